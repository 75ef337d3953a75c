"""Reading the invoice book and changing an invoice's flow state (pause, dispute).

An invoice's `status` is derived, not stored: paid once its payments settle it, else the
state people set (disputed, paused until a date), else overdue or open by its due date.
The list filter below and `status_of` must agree; a test walks every status through both.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID, uuid4

from litestar.exceptions import ClientException

from backend import events, settlement
from backend.tables import Invoice, InvoiceEvent, Payment
from backend.validation import FieldError, InvalidInput
from tenants.pagination import decode_cursor_as, keyset_page
from tenants.scope import TenantScope
from tenants.transactions import write_transaction

STATUSES = (
    "open",
    "overdue",
    "paid",
    "paused",
    "disputed",
    "planned",
    "in_collection",
    "written_off",
)
# States set by people or the engine that hold an unpaid invoice out of the automated flow.
HELD = ("disputed", "planned", "in_collection", "written_off")


class Conflict(ClientException):
    status_code = 409


def today() -> date:
    return datetime.now(UTC).date()


def status_of(row: dict[str, Any], on: date) -> str:
    if row["settled_date"] is not None:
        return "paid"
    state = row["state"]
    if state in HELD:
        return state
    if state == "paused" and (row["paused_until"] is None or row["paused_until"] >= on):
        return "paused"
    return "overdue" if row["due_date"] < on else "open"


def _status_filter(status: str, on: date) -> Any:
    unpaid = Invoice.settled_date.is_null()
    if status == "paid":
        return Invoice.settled_date.is_not_null()
    if status in HELD:
        return unpaid & (Invoice.state == status)
    pause_holds = Invoice.paused_until.is_null() | (Invoice.paused_until >= on)
    if status == "paused":
        return unpaid & (Invoice.state == "paused") & pause_holds
    flowing = (Invoice.state == "active") | (
        (Invoice.state == "paused")
        & Invoice.paused_until.is_not_null()
        & (Invoice.paused_until < on)
    )
    by_due = Invoice.due_date < on if status == "overdue" else Invoice.due_date >= on
    return unpaid & flowing & by_due


_COLUMNS = (
    Invoice.id,
    Invoice.external_id,
    Invoice.issue_date,
    Invoice.due_date,
    Invoice.amount,
    Invoice.currency,
    Invoice.reference,
    Invoice.e_invoice,
    Invoice.fee_agreed,
    Invoice.description,
    Invoice.state,
    Invoice.paused_until,
    Invoice.paid_amount,
    Invoice.settled_date,
    Invoice.fees_charged,
    Invoice.interest_accrued,
    Invoice.interest_as_of,
    Invoice.created_at,
    Invoice.updated_at,
    Invoice.debtor.id.as_alias("debtor_id"),
    Invoice.debtor.external_id.as_alias("debtor_external_id"),
    Invoice.debtor.name.as_alias("debtor_name"),
    Invoice.debtor.type.as_alias("debtor_type"),
)


def present(row: dict[str, Any], on: date) -> dict[str, Any]:
    settled = row["settled_date"]
    past_due = ((settled or on) - row["due_date"]).days
    return {
        "id": row["id"],
        "external_id": row["external_id"],
        "debtor": {
            "id": row["debtor_id"],
            "external_id": row["debtor_external_id"],
            "name": row["debtor_name"],
            "type": row["debtor_type"],
        },
        "issue_date": row["issue_date"],
        "due_date": row["due_date"],
        "amount": row["amount"],
        "currency": row["currency"],
        "paid_amount": row["paid_amount"],
        "outstanding": max(0, row["amount"] - row["paid_amount"]),
        "overpaid": max(0, row["paid_amount"] - row["amount"]),
        "fees": row["fees_charged"],
        "interest_accrued": row["interest_accrued"],
        "interest_as_of": row["interest_as_of"],
        "status": status_of(row, on),
        "days_past_due": max(0, past_due),
        "settled_date": settled,
        "paused_until": row["paused_until"] if row["state"] == "paused" else None,
        "reference": row["reference"],
        "e_invoice": row["e_invoice"],
        "fee_agreed": row["fee_agreed"],
        "description": row["description"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


async def list_invoices(
    scope: TenantScope,
    *,
    status: str | None,
    debtor: str | None,
    external_id: str | None,
    due_from: date | None,
    due_to: date | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    on = today()
    query = scope.select(Invoice, *_COLUMNS)
    if status is not None:
        query = query.where(_status_filter(status, on))
    if debtor is not None:
        condition = Invoice.debtor.external_id == debtor
        with contextlib.suppress(ValueError):
            condition = condition | (Invoice.debtor.id == UUID(debtor))
        query = query.where(condition)
    if external_id is not None:
        query = query.where(Invoice.external_id == external_id)
    if due_from is not None:
        query = query.where(Invoice.due_date >= due_from)
    if due_to is not None:
        query = query.where(Invoice.due_date <= due_to)
    if cursor is not None:
        after_due, after_id = decode_cursor_as(cursor, date.fromisoformat, UUID)
        query = query.where(
            (Invoice.due_date > after_due)
            | ((Invoice.due_date == after_due) & (Invoice.id > after_id))
        )
    rows, next_cursor = await keyset_page(
        query.order_by(Invoice.due_date, Invoice.id), limit, lambda r: (r["due_date"], r["id"])
    )
    return {"items": [present(r, on) for r in rows], "next_cursor": next_cursor}


async def get_invoice(scope: TenantScope, invoice_id: UUID) -> dict[str, Any]:
    row = await scope.get(Invoice, invoice_id, *_COLUMNS)
    invoice = present(row, today())
    payments = await scope.select(
        Payment,
        Payment.id,
        Payment.external_id,
        Payment.amount,
        Payment.paid_date,
        Payment.matched_by,
    ).where(Payment.invoice == invoice_id)
    events = await scope.select(
        InvoiceEvent,
        InvoiceEvent.kind,
        InvoiceEvent.reason,
        InvoiceEvent.until,
        InvoiceEvent.actor,
        InvoiceEvent.at,
    ).where(InvoiceEvent.invoice == invoice_id)
    timeline: list[dict[str, Any]] = [
        {
            "type": "payment",
            "date": p["paid_date"].isoformat(),
            "payment_id": p["id"],
            "external_id": p["external_id"],
            "amount": p["amount"],
            "matched_by": p["matched_by"],
        }
        for p in payments
    ] + [
        {
            "type": e["kind"],
            "date": e["at"].isoformat(),
            "reason": e["reason"],
            "until": e["until"],
            "actor": e["actor"],
        }
        for e in events
    ]
    timeline.sort(key=lambda entry: entry["date"])
    invoice["timeline"] = timeline
    return invoice


# kind -> (states it may start from, state it leaves behind)
TRANSITIONS = {
    "pause": ({"active", "paused"}, "paused"),
    "resume": ({"paused"}, "active"),
    "dispute": ({"active", "paused"}, "disputed"),
    "resolve": ({"disputed"}, "active"),
}


async def change_state(
    scope: TenantScope, invoice_id: UUID, kind: str, reason: str, until: date | None = None
) -> dict[str, Any]:
    allowed, target = TRANSITIONS[kind]
    if until is not None and until < today():
        raise InvalidInput([FieldError("until", "until must not be in the past")])
    async with write_transaction():
        row = await scope.get(Invoice, invoice_id, Invoice.state, Invoice.settled_date)
        if row["settled_date"] is not None and kind in ("pause", "dispute"):
            raise Conflict("the invoice is paid")
        if row["state"] not in allowed:
            raise Conflict(f"cannot {kind} an invoice that is {row['state']}")
        now = datetime.now(UTC)
        await scope.update(
            Invoice,
            {
                Invoice.state: target,
                Invoice.paused_until: until if target == "paused" else None,
                Invoice.updated_at: now,
            },
        ).where(Invoice.id == invoice_id)
        await scope.insert(
            InvoiceEvent,
            {
                "id": uuid4(),
                "invoice": invoice_id,
                "kind": kind,
                "reason": reason,
                "until": until,
                "actor": scope.principal.actor,
                "at": now,
            },
        )
        await scope.audit(
            f"invoice.{kind}",
            "invoice",
            invoice_id,
            reason=reason,
            until=until,
        )
        await events.invoice_changed(scope, kind, invoice_id, reason, until)
    return await get_invoice(scope, invoice_id)


async def list_payments(
    scope: TenantScope, *, unmatched: bool | None, limit: int, cursor: str | None
) -> dict[str, Any]:
    query = scope.select(
        Payment,
        Payment.id,
        Payment.external_id,
        Payment.amount,
        Payment.currency,
        Payment.paid_date,
        Payment.invoice,
        Payment.invoice_external_id,
        Payment.reference,
        Payment.matched_by,
        Payment.matched_at,
        Payment.created_at,
    )
    if unmatched is True:
        query = query.where(Payment.matched_by.is_null())
    elif unmatched is False:
        query = query.where(Payment.matched_by.is_not_null())
    if cursor is not None:
        (after,) = decode_cursor_as(cursor, UUID)
        query = query.where(Payment.id > after)
    rows, next_cursor = await keyset_page(query.order_by(Payment.id), limit, lambda r: (r["id"],))
    for row in rows:
        row["invoice_id"] = row.pop("invoice")
    return {"items": rows, "next_cursor": next_cursor}


async def match_payment(scope: TenantScope, payment_id: UUID, invoice_id: UUID) -> dict[str, Any]:
    async with write_transaction():
        # Takes its turn with ERP batches: book_months' trigger files the payment under the
        # invoice's due month as it reads it, and a batch moving that due date at the same
        # time (PostgreSQL, read committed) would leave it filed under the old month for good.
        await scope.lock("ingest")
        payment = await scope.get(Payment, payment_id, Payment.matched_by, Payment.invoice)
        await scope.get(Invoice, invoice_id, Invoice.id)
        if payment["matched_by"] is not None:
            raise Conflict("the payment is already matched")
        await scope.update(
            Payment,
            {
                Payment.invoice: invoice_id,
                Payment.matched_by: "manual",
                Payment.matched_at: datetime.now(UTC),
            },
        ).where(Payment.id == payment_id)
        await settlement.resettle(scope, [invoice_id])
        await scope.audit(
            "payment.matched",
            "payment",
            payment_id,
            invoice_id=invoice_id,
        )
    return await get_invoice(scope, invoice_id)
