"""The event log: what happened to a tenant's book, for its own systems to follow.

An event is written in the transaction of the change it reports (the caller's
`write_transaction`), so there is never an event of a change that rolled back, nor a change
without its event. The same write puts one delivery per subscribed webhook into the outbox
(`WebhookDelivery`), which `backend.webhooks` then sends at least once: a webhook sees every
event of its kinds recorded after it was created, none from before.

Kinds are defined once, here (`EventKind`); the API, the webhook subscriptions and the
tests read them from this module. The dunning engine records many events per run through
the tenant scope's bulk path (`record_many`: one statement per table, whatever the count).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, Literal, get_args
from uuid import UUID, uuid4

import msgspec

from backend.tables import Event, Letter, Webhook, WebhookDelivery
from tenants import clock
from tenants.pagination import decode_cursor_as, keyset_page
from tenants.scope import TenantScope

EventKind = Literal[
    "step_taken",
    "fee_charged",
    "letter_created",
    "contact_failed",
    "invoice_paused",
    "invoice_resumed",
    "invoice_disputed",
    "invoice_resolved",
    "case_opened",
    "plan_created",
    "instalment_missed",
    "policy_activated",
]
KINDS: tuple[str, ...] = get_args(EventKind)

# An invoice's state change (backend.book's TRANSITIONS) and the event it records.
STATE_EVENTS: dict[str, EventKind] = {
    "pause": "invoice_paused",
    "resume": "invoice_resumed",
    "dispute": "invoice_disputed",
    "resolve": "invoice_resolved",
}

EVENT_COLUMNS = ("id", "tenant", "kind", "invoice", "data", "at")
DELIVERY_COLUMNS = ("id", "tenant", "webhook", "event", "status", "attempts", "created_at")


def _encode(data: Mapping[str, Any]) -> str:
    return msgspec.json.encode(data).decode()


async def record(
    scope: TenantScope, kind: EventKind, invoice: UUID | str | None = None, **data: Any
) -> None:
    """One event of this tenant, in the caller's write transaction."""
    await record_many(scope, [(kind, invoice, data)])


async def record_many(
    scope: TenantScope,
    events: Sequence[tuple[EventKind, UUID | str | None, Mapping[str, Any]]],
) -> None:
    """Many events in one statement (and their deliveries in one more), in the caller's
    write transaction; `(kind, invoice or None, data)` each."""
    if not events:
        return
    for kind, _, _ in events:
        if kind not in KINDS:
            raise ValueError(f"unknown event kind {kind!r}")
    now = clock.now()
    rows = [
        (uuid4(), scope.tenant_id, kind, _uuid(invoice), _encode(data), now)
        for kind, invoice, data in events
    ]
    await scope.upsert(Event, EVENT_COLUMNS, rows, ("id",), ())
    subscribed = await scope.select(Webhook, Webhook.id, Webhook.events)
    if not subscribed:
        return
    deliveries = [
        (uuid4(), scope.tenant_id, hook["id"], row[0], "pending", 0, now)
        for hook in subscribed
        for row in rows
        if row[2] in hook["events"].split(",")
    ]
    await scope.upsert(WebhookDelivery, DELIVERY_COLUMNS, deliveries, ("webhook", "event"), ())


def _uuid(value: UUID | str | None) -> UUID | None:
    if value is None or isinstance(value, UUID):
        return value
    return UUID(str(value))


async def invoice_changed(
    scope: TenantScope, change: str, invoice: UUID, reason: str, until: date | None
) -> None:
    """A person's pause, resume, dispute or resolve of an invoice (`STATE_EVENTS`)."""
    await record(scope, STATE_EVENTS[change], invoice, reason=reason, until=until)


async def record_steps(
    scope: TenantScope, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """`step_taken` for each step a dunning run recorded, and `fee_charged` for each that
    charges a fee; `rows` are the run's step rows in the order `columns` names."""
    events: list[tuple[EventKind, UUID | str | None, Mapping[str, Any]]] = []
    for row in rows:
        step = dict(zip(columns, row, strict=True))
        data = {
            "step_id": str(step["id"]),
            "ordinal": step["ordinal"],
            "run_date": step["run_date"],
            "action": step["action"],
            "channel": step["channel"],
            "status": step["status"],
        }
        events.append(("step_taken", step["invoice"], data))
        if step["fee"]:
            fee = {"step_id": data["step_id"], "fee": step["fee"], "fee_kind": step["fee_kind"]}
            events.append(("fee_charged", step["invoice"], fee))
    await record_many(scope, events)


async def step_settled(
    scope: TenantScope, step: Mapping[str, Any], outcome: str, reason: str | None = None
) -> None:
    """What a delivered or given-up dunning step tells a client: a letter now exists
    (`letter_created`), or a contact failed for good (`contact_failed`, its fee given back).
    Other outcomes record nothing."""
    base = {"step_id": str(step["id"]), "action": step["action"], "channel": step["channel"]}
    if outcome == "failed":
        failed = {**base, "reason": (reason or "")[:200], "fee_returned": step["fee"]}
        await record(scope, "contact_failed", step["invoice"], **failed)
    elif outcome == "sent" and step["channel"] == "letter":
        letter = await scope.select(Letter, Letter.id).where(Letter.step == step["id"]).first()
        letter_id = str(letter["id"]) if letter else None
        await record(scope, "letter_created", step["invoice"], **base, letter_id=letter_id)


def decode(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored event as the API shows it (its data parsed back, its time UTC-aware)."""
    return {
        "id": row["id"],
        "kind": row["kind"],
        "invoice_id": row["invoice"],
        "data": msgspec.json.decode(row["data"]),
        "at": _moment(row["at"]),
    }


async def page(
    scope: TenantScope, kind: str | None, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """This tenant's events in the order they were recorded (at, then id), optionally of one
    kind; keyset-paginated, so a client follows the log by its last cursor."""
    query = scope.select(Event).order_by(Event.at).order_by(Event.id)
    if kind is not None:
        query = query.where(Event.kind == kind)
    if cursor is not None:
        at, after = decode_cursor_as(cursor, _moment, UUID)
        query = query.where((Event.at > at) | ((Event.at == at) & (Event.id > after)))
    rows, next_cursor = await keyset_page(
        query, limit, lambda r: (_moment(r["at"]).isoformat(), r["id"])
    )
    return [decode(r) for r in rows], next_cursor


def _moment(value: str | datetime) -> datetime:
    """A cursor's or SQLite's timestamp as an aware UTC datetime."""
    return clock.aware(datetime.fromisoformat(value) if isinstance(value, str) else value)
