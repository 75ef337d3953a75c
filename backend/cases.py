"""Collection cases: invoices the policy hands over to the agency's staff.

The dunning run opens a case `escalate_after_days` after due for an invoice still unpaid
(and not paused or disputed); the invoice leaves the automated flow (`in_collection`) and
staff work it: assign, note, close with an outcome. The agency sees every tenant's cases
(its work queue), a tenant only its own. Closing as written off marks the invoice so;
closing as paid needs the invoice settled; enforcement (Kronofogden) and plan keep it out
of the automated flow.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Literal
from uuid import UUID, uuid4

from litestar.exceptions import ClientException

from backend import events
from backend.tables import CaseNote, CollectionCase, Invoice
from backend.validation import FieldError, InvalidInput
from tenants import onboarding
from tenants.pagination import decode_cursor_as, keyset_page
from tenants.scope import AgencyScope, TenantScope
from tenants.transactions import write_transaction

Outcome = Literal["paid", "plan", "written_off", "enforcement"]
OUTCOMES: tuple[str, ...] = ("paid", "plan", "written_off", "enforcement")
# What closing a case does to its invoice's flow state.
INVOICE_STATE = {
    "written_off": "written_off",
    "enforcement": "in_collection",
    "plan": "in_collection",
}


class CaseConflict(ClientException):
    status_code = 409


async def open_cases(scope: TenantScope, invoices: list[tuple[UUID, int]], on: date) -> int:
    """Open a case for each (invoice, outstanding); inside the run's transaction."""
    if not invoices:
        return 0
    now = datetime.now(UTC)
    await scope.upsert(
        CollectionCase,
        ("id", "tenant", "invoice", "opened_on", "status", "amount", "opened_at"),
        [
            (uuid4(), scope.tenant_id, invoice, on, "open", amount, now)
            for invoice, amount in invoices
        ],
        ("invoice",),
        (),
    )
    await scope.update_many(
        Invoice, "id", ("state",), [("in_collection", invoice) for invoice, _ in invoices]
    )
    await events.record_many(
        scope,
        [("case_opened", invoice, {"outstanding": amount}) for invoice, amount in invoices],
    )
    return len(invoices)


def _out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "tenant_id": row["tenant"],
        "invoice_id": row["invoice"],
        "invoice_external_id": row["invoice_external_id"],
        "debtor_name": row["debtor_name"],
        "amount": row["amount"],
        "opened_on": row["opened_on"],
        "status": row["status"],
        "outcome": row["outcome"],
        "assignee": row["assignee"],
        "closed_at": row["closed_at"],
    }


_COLUMNS = (
    CollectionCase.id,
    CollectionCase.tenant,
    CollectionCase.invoice,
    CollectionCase.invoice.external_id.as_alias("invoice_external_id"),
    CollectionCase.invoice.debtor.name.as_alias("debtor_name"),  # type: ignore[union-attr]
    CollectionCase.amount,
    CollectionCase.opened_on,
    CollectionCase.status,
    CollectionCase.outcome,
    CollectionCase.assignee,
    CollectionCase.closed_at,
)


async def page(
    query: Any, status: str | None, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Oldest open first (the queue's order), keyset-paginated on (opened_on, id)."""
    if status is not None:
        query = query.where(CollectionCase.status == status)
    if cursor is not None:
        after_day, after_id = decode_cursor_as(cursor, date.fromisoformat, UUID)
        query = query.where(
            (CollectionCase.opened_on > after_day)
            | ((CollectionCase.opened_on == after_day) & (CollectionCase.id > after_id))
        )
    rows, next_cursor = await keyset_page(
        query.order_by(CollectionCase.opened_on, CollectionCase.id),
        limit,
        lambda r: (r["opened_on"], r["id"]),
    )
    return [_out(r) for r in rows], next_cursor


async def agency_page(
    scope: AgencyScope, status: str | None, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    return await page(scope.select(CollectionCase, *_COLUMNS), status, limit, cursor)


async def tenant_page(
    scope: TenantScope, status: str | None, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    return await page(scope.select(CollectionCase, *_COLUMNS), status, limit, cursor)


async def get(scope: TenantScope, case_id: UUID) -> dict[str, Any]:
    case = _out(await scope.get(CollectionCase, case_id, *_COLUMNS))
    notes = (
        await scope.select(CaseNote, CaseNote.author, CaseNote.text, CaseNote.at)
        .where(CaseNote.case == case_id)
        .order_by(CaseNote.at)
    )
    return {**case, "notes": notes}


async def assign(scope: TenantScope, case_id: UUID, assignee: UUID | None) -> dict[str, Any]:
    """Give the case to an agency user (or to nobody)."""
    if assignee is not None and not await onboarding.is_active_agency_user(assignee):
        raise InvalidInput([FieldError("assignee", "no active agency user with this id")])
    async with write_transaction():
        await scope.get(CollectionCase, case_id, CollectionCase.id)
        await scope.update(CollectionCase, {CollectionCase.assignee: assignee}).where(
            CollectionCase.id == case_id
        )
        await scope.audit("case.assigned", "case", case_id, assignee=assignee)
    return await get(scope, case_id)


async def note(scope: TenantScope, case_id: UUID, text: str) -> dict[str, Any]:
    async with write_transaction():
        await scope.get(CollectionCase, case_id, CollectionCase.id)
        await scope.insert(
            CaseNote,
            {
                "id": uuid4(),
                "case": case_id,
                "author": scope.principal.actor,
                "text": text,
                "at": datetime.now(UTC),
            },
        )
    return await get(scope, case_id)


async def close(scope: TenantScope, case_id: UUID, outcome: str) -> dict[str, Any]:
    async with write_transaction():
        case = await scope.get(
            CollectionCase, case_id, CollectionCase.status, CollectionCase.invoice
        )
        if case["status"] == "closed":
            raise CaseConflict("the case is closed already")
        if outcome == "paid":
            invoice = await scope.get(Invoice, case["invoice"], Invoice.settled_date)
            if invoice["settled_date"] is None:
                raise CaseConflict("the invoice is not paid: close it with another outcome")
        await scope.update(
            CollectionCase,
            {
                CollectionCase.status: "closed",
                CollectionCase.outcome: outcome,
                CollectionCase.closed_at: datetime.now(UTC),
            },
        ).where(CollectionCase.id == case_id)
        if outcome in INVOICE_STATE:
            await scope.update(Invoice, {Invoice.state: INVOICE_STATE[outcome]}).where(
                Invoice.id == case["invoice"]
            )
        await scope.audit("case.closed", "case", case_id, outcome=outcome)
    return await get(scope, case_id)
