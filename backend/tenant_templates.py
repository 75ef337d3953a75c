"""A tenant's own wording of its messages: stored overrides of the channels' templates.

An override is checked when it is saved by rendering it, in the channels' sandbox, for a
sample message of every kind in its language (a misspelt field or an unsafe construct is a
422 then, never a failed letter later). The dunning engine hands a tenant's overrides to
every channel it sends through; `preview` shows what a debtor would get, without sending.
"""

from __future__ import annotations

import datetime as dt
import functools
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import anyio.to_thread

from backend.channels.message import (
    Creditor,
    Debtor,
    DisputeContact,
    Interest,
    Message,
    MessageError,
    PaymentInstructions,
)
from backend.channels.templates import Rendered, TemplateProblem, template_names, templates_for
from backend.tables import TenantTemplate
from backend.validation import FieldError, InvalidInput
from simulator.policy import ACTIONS
from tenants.scope import TenantScope
from tenants.transactions import write_transaction

NAMES = frozenset(template_names())


async def overrides(scope: TenantScope) -> dict[str, str]:
    rows = await scope.select(TenantTemplate, TenantTemplate.name, TenantTemplate.source)
    return {r["name"]: r["source"] for r in rows}


def sample(kind: str, channel: str, language: str, creditor_name: str, on: dt.date) -> Message:
    """A fully filled message of this kind, as a preview or a save check renders it."""
    due = on - dt.timedelta(days=20)
    return Message(
        kind=kind,  # type: ignore[arg-type]
        channel=channel,  # type: ignore[arg-type]
        language=language,  # type: ignore[arg-type]
        sent_on=on,
        creditor=Creditor(tenant_id="preview", name=creditor_name[:200]),
        debtor=Debtor(
            name="Märta Ångström",
            email="marta@example.se",
            phone="+46701234567",
            address=("Västra vägen 3", "222 33 Göteborg"),
        ),
        invoice_number="F-2026-0042",
        issue_date=due - dt.timedelta(days=30),
        due_date=due,
        currency="SEK",
        amount=123_450,
        fee=6_000 if kind == "reminder" else 18_000,
        interest=Interest(
            mode="statutory",
            accrued=676,
            annual_rate_bp=1_000,
            reference_rate_bp=200,
            margin_bp=800,
            from_date=due,
            basis=123_450,
        ),
        payment=PaymentInstructions(bankgiro="5555-1234", reference="20260042"),
        dispute=DisputeContact(email="fragor@example.se"),
        pay_by=on + dt.timedelta(days=10),
    )


def render(
    current: dict[str, str], kind: str, channel: str, language: str, creditor: str, on: dt.date
) -> Rendered:
    try:
        templates = templates_for(current)
        message = sample(kind, channel, language, creditor, on)
        templates.render_call_script(message)  # the call script too: no template goes unchecked
        return templates.render_message(message)
    except (TemplateProblem, MessageError) as exc:
        raise InvalidInput([FieldError("source", str(exc)[:500])]) from exc


async def render_off_loop(
    current: dict[str, str], kind: str, channel: str, language: str, creditor: str, on: dt.date
) -> Rendered:
    """`render` in a worker thread: a tenant's template, however bounded, is not rendered on
    the event loop that answers everyone else."""
    return await anyio.to_thread.run_sync(
        functools.partial(render, current, kind, channel, language, creditor, on)
    )


async def save(scope: TenantScope, name: str, source: str, creditor: str) -> dict[str, Any]:
    """Store an override after rendering it for every kind in its language."""
    if name not in NAMES:
        raise InvalidInput([FieldError("name", "not a template name: see GET /templates")])
    language = name.split("/", 1)[0]
    current = {**await overrides(scope), name: source}
    today = datetime.now(UTC).date()
    for kind in ACTIONS:
        await render_off_loop(current, kind, "email", language, creditor, today)
    async with write_transaction():
        await scope.delete(TenantTemplate).where(TenantTemplate.name == name)
        await scope.insert(
            TenantTemplate,
            {"id": uuid4(), "name": name, "source": source, "updated_at": datetime.now(UTC)},
        )
        await scope.audit("template.saved", "template", name, size=len(source))
    return {"name": name, "overridden": True}


async def reset(scope: TenantScope, name: str) -> None:
    """Back to the default wording."""
    if name not in NAMES:
        raise InvalidInput([FieldError("name", "not a template name: see GET /templates")])
    async with write_transaction():
        await scope.delete(TenantTemplate).where(TenantTemplate.name == name)
        await scope.audit("template.reset", "template", name)
