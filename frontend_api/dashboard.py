"""A client's dashboard: its book's ageing, cash in, recent contacts and fees, and what
waits for a person (unmatched payments, invoices paused or disputed).

Sums and curves are grouped by the database (`figures`, and per day here); the lists are
short, newest first, each with its total count beside it.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from piccolo.query.functions.aggregate import Count, Sum

from backend.tables import CollectionCase, DunningStep, Invoice, Payment
from frontend_api import figures
from frontend_api.portfolio import book_fields
from tenants.scope import TenantScope

CASH_IN_DAYS = 90
LIST_LENGTH = 15
HELD_STATES = ("paused", "disputed")


@figures.sums
async def dashboard(scope: TenantScope, as_of: date, months: int = 12) -> dict[str, Any]:
    books = await figures.books(scope, as_of)
    book = books.get(figures.tenant_key(scope.tenant_id), figures.Book())
    since = as_of - timedelta(days=CASH_IN_DAYS - 1)
    daily = await (
        scope.select(Payment, Payment.paid_date, Sum(Payment.amount, alias="amount"))
        .where((Payment.paid_date >= since) & (Payment.paid_date <= as_of))
        .group_by(Payment.paid_date)
    )
    by_day = {_day(r["paid_date"]): int(r["amount"] or 0) for r in daily}
    cash_in, running = [], 0
    for offset in range(CASH_IN_DAYS):
        day = since + timedelta(days=offset)
        running += by_day.get(day, 0)
        cash_in.append({"date": day, "amount": by_day.get(day, 0), "cumulative": running})
    contacts = await (
        scope.select(
            DunningStep,
            DunningStep.id,
            DunningStep.invoice.id.as_alias("invoice_id"),
            DunningStep.invoice.external_id.as_alias("invoice_external_id"),
            DunningStep.run_date,
            DunningStep.action,
            DunningStep.channel,
            DunningStep.fee,
            DunningStep.status,
        )
        .order_by(DunningStep.created_at, ascending=False)
        .limit(LIST_LENGTH)
    )
    unmatched_total = await (
        scope.select(Payment, Count(alias="n"), Sum(Payment.amount, alias="amount"))
        .where(Payment.invoice.is_null())
        .first()
    )
    unmatched = await (
        scope.select(
            Payment,
            Payment.id,
            Payment.external_id,
            Payment.amount,
            Payment.paid_date,
            Payment.reference,
        )
        .where(Payment.invoice.is_null())
        .order_by(Payment.paid_date, ascending=False)
        .limit(LIST_LENGTH)
    )
    held_counts = await (
        scope.select(Invoice, Invoice.state, Count(alias="n"))
        .where(Invoice.settled_date.is_null() & Invoice.state.is_in(list(HELD_STATES)))
        .group_by(Invoice.state)
    )
    held = await (
        scope.select(
            Invoice,
            Invoice.id,
            Invoice.external_id,
            Invoice.debtor.name.as_alias("debtor_name"),
            Invoice.state,
            Invoice.due_date,
            Invoice.amount,
            Invoice.paid_amount,
            Invoice.paused_until,
        )
        .where(Invoice.settled_date.is_null() & Invoice.state.is_in(list(HELD_STATES)))
        .order_by(Invoice.due_date)
        .limit(LIST_LENGTH)
    )
    open_cases = await scope.count(CollectionCase).where(CollectionCase.status == "open")
    return {
        "tenant_id": scope.tenant_id,
        "currency": scope.currency,
        "as_of": as_of,
        "dso_method": figures.DSO_METHOD,
        **book_fields(book),
        "open_cases": open_cases,
        "cash_in": cash_in,
        "monthly": (await figures.monthly(scope, as_of, months))[scope.currency],
        "recent_contacts": list(contacts),
        "unmatched": {
            "count": int(unmatched_total["n"] or 0) if unmatched_total else 0,
            "amount": int(unmatched_total["amount"] or 0) if unmatched_total else 0,
            "items": list(unmatched),
        },
        "held": {
            "counts": {
                state: next((int(r["n"]) for r in held_counts if r["state"] == state), 0)
                for state in HELD_STATES
            },
            "items": [{**r, "outstanding": max(0, r["amount"] - r["paid_amount"])} for r in held],
        },
    }


def _day(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
