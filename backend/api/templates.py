"""A tenant's own wording of reminders, collection notices, SMS and calls, with a preview."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from litestar import Controller, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, PathParameter
from msgspec import Meta, Struct

from backend import tenant_templates
from backend.channels.templates import MAX_SOURCE_CHARS
from tenants.scope import TenantScope
from tenants.tables import Tenant

Language = Literal["sv", "en"]
File = Annotated[
    str,
    PathParameter(
        max_length=64, pattern=r"^[a-z_]+(\.[a-z]+)+$", description="e.g. reminder.sms.txt"
    ),
]


class TemplateOut(Struct):
    name: str
    overridden: bool


class TemplateIn(Struct, forbid_unknown_fields=True):
    source: Annotated[str, Meta(min_length=1, max_length=MAX_SOURCE_CHARS)]


class PreviewIn(Struct, forbid_unknown_fields=True):
    kind: Literal["reminder", "collection_notice"]
    channel: Literal["email", "sms", "letter", "phone"] = "email"
    language: Language = "sv"


class RenderedOut(Struct):
    subject: str
    text: str
    html: str
    sms: str
    interest: str


async def _creditor(scope: TenantScope) -> str:
    row = await Tenant.select(Tenant.name).where(Tenant.id == scope.tenant_id).first()
    return row["name"] if row else "?"


class TemplateController(Controller):
    path = "/api/v1/tenants/{tenant_id:uuid}/templates"
    tags = ["dunning"]

    @get("/", opt={"permission": "read"}, summary="Every template and whether it is the tenant's")
    async def list_templates(self, tenant: NamedDependency[TenantScope]) -> list[TemplateOut]:
        own = await tenant_templates.overrides(tenant)
        return [TemplateOut(name, name in own) for name in sorted(tenant_templates.NAMES)]

    @put(
        "/{language:str}/{file:str}",
        opt={"permission": "profile:manage", "body": TemplateIn},
        summary="Save the tenant's wording (checked by rendering every kind)",
    )
    async def save(
        self,
        tenant: NamedDependency[TenantScope],
        language: FromPath[Language],
        file: FromPath[File],
        data: JSONBody[TemplateIn],
    ) -> TemplateOut:
        saved = await tenant_templates.save(
            tenant, f"{language}/{file}", data.source, await _creditor(tenant)
        )
        return TemplateOut(**saved)

    @delete(
        "/{language:str}/{file:str}",
        opt={"permission": "profile:manage"},
        summary="Back to the default wording",
    )
    async def reset(
        self,
        tenant: NamedDependency[TenantScope],
        language: FromPath[Language],
        file: FromPath[File],
    ) -> None:
        await tenant_templates.reset(tenant, f"{language}/{file}")

    @post(
        "/preview",
        status_code=200,
        opt={"permission": "read", "body": PreviewIn},
        summary="What a debtor would get with the tenant's templates (a sample invoice)",
    )
    async def preview(
        self, tenant: NamedDependency[TenantScope], data: JSONBody[PreviewIn]
    ) -> RenderedOut:
        rendered = await tenant_templates.render_off_loop(
            await tenant_templates.overrides(tenant),
            data.kind,
            data.channel,
            data.language,
            await _creditor(tenant),
            datetime.now(UTC).date(),
        )
        return RenderedOut(
            rendered.subject, rendered.text, rendered.html, rendered.sms, rendered.interest
        )
