"""Matching payments to invoices and keeping each invoice's paid amount and settled date.

An invoice is settled on the day its payments, taken in date order, first reach its amount
(formats §1); payments beyond that are an overpayment, kept and shown, never dropped.

What an invoice's payments add up to is bounded by `MAX_PAID`, checked before it is
written: amounts are bounded one by one (`ingest.MAX_AMOUNT`), but their count is not, and
a sum past a signed 64-bit integer would fail in the database after the work was done.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from uuid import UUID

from litestar.exceptions import ClientException

from backend.tables import Invoice, Payment
from tenants.scope import TenantScope

# A thousand of the largest invoices (`ingest.MAX_AMOUNT`), 9 times below 2^63.
MAX_PAID = 10**18


class PaidTotalTooLarge(ClientException):
    """Payments of these invoices would add up past `MAX_PAID`; nothing is written."""

    status_code = 422

    def __init__(self, invoice_ids: list[UUID]) -> None:
        super().__init__(
            detail=f"the payments of {len(invoice_ids)} invoice(s) would add up to more "
            f"than {MAX_PAID} minor units"
        )
        self.invoice_ids = invoice_ids


@dataclass
class InvoiceTargets:
    by_external_id: dict[str, UUID] = field(default_factory=dict)
    # Only references carried by exactly one invoice; an ambiguous one matches nothing.
    by_reference: dict[str, UUID] = field(default_factory=dict)

    def match(
        self, external_id: str | None, reference: str | None
    ) -> tuple[UUID | None, str | None]:
        if external_id and external_id in self.by_external_id:
            return self.by_external_id[external_id], "invoice_id"
        if reference and reference in self.by_reference:
            return self.by_reference[reference], "reference"
        return None, None


async def find_invoices(
    scope: TenantScope, external_ids: list[str], references: list[str]
) -> InvoiceTargets:
    targets = InvoiceTargets()
    for row in await scope.fetch_where_in(
        Invoice, ("id", "external_id"), "external_id", sorted(set(external_ids))
    ):
        targets.by_external_id[row["external_id"]] = _uuid(row["id"])
    seen: dict[str, list[UUID]] = defaultdict(list)
    for row in await scope.fetch_where_in(
        Invoice, ("id", "reference"), "reference", sorted(set(references))
    ):
        seen[row["reference"]].append(_uuid(row["id"]))
    targets.by_reference = {ref: ids[0] for ref, ids in seen.items() if len(ids) == 1}
    return targets


async def match_waiting_payments(
    scope: TenantScope, external_ids: list[str], references: list[str]
) -> None:
    """Match unmatched payments that name invoices which have just arrived."""
    if not external_ids and not references:
        return
    columns = ("id", "invoice_external_id", "reference", "matched_by")
    waiting = {
        row["id"]: row
        for column, values in (("invoice_external_id", external_ids), ("reference", references))
        for row in await scope.fetch_where_in(Payment, columns, column, sorted(set(values)))
        if row["matched_by"] is None
    }
    if not waiting:
        return
    targets = await find_invoices(
        scope,
        [r["invoice_external_id"] for r in waiting.values() if r["invoice_external_id"]],
        [r["reference"] for r in waiting.values() if r["reference"]],
    )
    now = datetime.now(UTC)
    updates = []
    for payment_id, row in waiting.items():
        invoice_id, how = targets.match(row["invoice_external_id"], row["reference"])
        if invoice_id is not None:
            updates.append((invoice_id, how, now, _uuid(payment_id)))
    await scope.update_many(Payment, "id", ("invoice", "matched_by", "matched_at"), updates)
    await resettle(scope, list({u[0] for u in updates}))


async def resettle(scope: TenantScope, invoice_ids: list[UUID]) -> None:
    """Recompute paid amount and settled date of these invoices from their payments."""
    if not invoice_ids:
        return
    ids = sorted(set(invoice_ids))
    amounts = {
        _uuid(r["id"]): r["amount"]
        for r in await scope.fetch_where_in(Invoice, ("id", "amount"), "id", ids)
    }
    payments: dict[UUID, list[tuple[date, int]]] = defaultdict(list)
    for r in await scope.fetch_where_in(
        Payment, ("invoice", "amount", "paid_date"), "invoice", ids
    ):
        payments[_uuid(r["invoice"])].append((_date(r["paid_date"]), r["amount"]))
    rows = []
    for invoice_id, amount in amounts.items():
        paid, settled = 0, None
        for paid_date, paid_amount in sorted(payments.get(invoice_id, [])):
            paid += paid_amount
            if settled is None and paid >= amount:
                settled = paid_date
        rows.append((paid, settled, invoice_id))
    too_large = [invoice_id for paid, _, invoice_id in rows if paid > MAX_PAID]
    if too_large:
        raise PaidTotalTooLarge(too_large)
    await scope.update_many(Invoice, "id", ("paid_amount", "settled_date"), rows)


async def paid_so_far(scope: TenantScope, invoice_ids: list[UUID]) -> dict[UUID, int]:
    """The stored paid amount of each of these invoices."""
    rows = await scope.fetch_where_in(
        Invoice, ("id", "paid_amount"), "id", sorted(set(invoice_ids))
    )
    return {_uuid(r["id"]): r["paid_amount"] for r in rows}


def _uuid(value: UUID | str) -> UUID:
    return value if isinstance(value, UUID) else UUID(value)


def _date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)
