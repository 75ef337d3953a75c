"""A tenant's event log and its webhooks (API.md: "Events and webhooks")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from msgspec import Meta, Struct

from backend import events, webhooks
from backend.api.deps import Cursor, Limit
from backend.api.page import Page
from backend.events import EventKind
from backend.settings import Settings
from tenants.scope import TenantScope


class EventOut(Struct):
    id: UUID
    kind: EventKind
    invoice_id: UUID | None
    data: dict[str, Any]
    at: datetime


class WebhookIn(Struct, forbid_unknown_fields=True):
    url: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=webhooks.MAX_URL_LENGTH,
            description="https:// (http:// to 127.0.0.1/localhost outside production only)",
        ),
    ]
    events: Annotated[
        list[EventKind], Meta(min_length=1, max_length=32, description="the kinds to receive")
    ]
    secret: Annotated[
        str,
        Meta(
            min_length=16,
            max_length=256,
            pattern=r"^[\x21-\x7e]+$",
            description="signs every delivery (Kravlab-Signature); stored, never answered",
        ),
    ]


class WebhookOut(Struct):
    id: UUID
    url: str
    events: list[EventKind]
    created_at: datetime
    created_by: str


class AttemptOut(Struct):
    attempt: Annotated[int, Meta(ge=1)]
    status_code: int | None
    error: str | None
    response: Annotated[str | None, Meta(description="the answer's first 200 characters")]
    at: datetime


class DeliveryOut(Struct):
    id: UUID
    event_id: UUID
    kind: EventKind
    status: Literal["pending", "sending", "retrying", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    log: list[AttemptOut]


class EventController(Controller):
    path = "/api/v1/tenants/{tenant_id:uuid}"
    tags = ["events"]

    @get("/events", opt={"permission": "read"}, summary="The tenant's events, oldest first")
    async def list_events(
        self,
        tenant: NamedDependency[TenantScope],
        kind: Annotated[EventKind | None, QueryParameter(description="only this kind")] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[EventOut]:
        rows, next_cursor = await events.page(tenant, kind, limit, cursor)
        return Page(msgspec.convert(rows, list[EventOut]), next_cursor)

    @post(
        "/webhooks",
        opt={"permission": "webhooks:manage", "body": WebhookIn},
        raises=[webhooks.TooManyWebhooks],
        summary="Subscribe a URL to event kinds; deliveries are signed with the secret",
    )
    async def create_webhook(
        self,
        tenant: NamedDependency[TenantScope],
        settings: NamedDependency[Settings],
        data: JSONBody[WebhookIn],
    ) -> WebhookOut:
        made = await webhooks.create(tenant, data.url, data.events, data.secret, settings.env)
        return msgspec.convert(made, WebhookOut)

    @get("/webhooks", opt={"permission": "webhooks:manage"}, summary="The tenant's webhooks")
    async def list_webhooks(self, tenant: NamedDependency[TenantScope]) -> list[WebhookOut]:
        return msgspec.convert(await webhooks.listing(tenant), list[WebhookOut])

    @delete(
        "/webhooks/{webhook_id:uuid}",
        opt={"permission": "webhooks:manage"},
        summary="Stop a webhook; its undelivered events and log go with it",
    )
    async def delete_webhook(
        self, tenant: NamedDependency[TenantScope], webhook_id: FromPath[UUID]
    ) -> None:
        await webhooks.delete(tenant, webhook_id)

    @get(
        "/webhooks/{webhook_id:uuid}/deliveries",
        opt={"permission": "webhooks:manage"},
        summary="A webhook's deliveries with every attempt, oldest first",
    )
    async def deliveries(
        self,
        tenant: NamedDependency[TenantScope],
        webhook_id: FromPath[UUID],
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[DeliveryOut]:
        items, next_cursor = await webhooks.deliveries(tenant, webhook_id, limit, cursor)
        return Page(msgspec.convert(items, list[DeliveryOut]), next_cursor)
