"""Batch ingest from ERPs: invoices (with their debtors) and payments, all or nothing.

A batch is decoded by msgspec straight into structs; if that or any business rule fails,
every bad field of every row is reported, schema and rules in one answer (the rules also
judge the valid fields of rows the schema refused, see `validation.InvalidBody`), and
nothing is written. Valid batches are
upserted by `external_id` with a content hash, so re-sending an unchanged row costs a read
and counts as `unchanged`. A tenant's batches are serialised (IMMEDIATE transaction on
SQLite, an advisory lock on PostgreSQL) so overlapping batches count correctly.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

import msgspec
from msgspec import Meta, Struct
from piccolo.table import Table

from backend import settlement
from backend.tables import Debtor, Invoice, Payment
from backend.validation import (
    MULTI_LINE,
    SINGLE_LINE,
    BodyRules,
    FieldError,
    InvalidInput,
    fields_of,
)
from tenants.codes import CURRENCIES
from tenants.scope import TenantScope
from tenants.transactions import write_transaction

MAX_BATCH_ROWS = 10_000
# 10^15 minor units (10 trillion SEK) for one invoice or payment; what many payments of one
# invoice may add up to is bounded by `settlement.MAX_PAID`.
MAX_AMOUNT = 10**15
EARLIEST = date(1970, 1, 1)
LATEST = date(2199, 12, 31)

ExternalId = Annotated[str, Meta(min_length=1, max_length=128, pattern=SINGLE_LINE)]
Amount = Annotated[int, Meta(gt=0, le=MAX_AMOUNT)]
Currency = Annotated[str, Meta(pattern="^[A-Z]{3}$", description="ISO 4217, the tenant's own")]
Reference = Annotated[str, Meta(min_length=1, max_length=64, pattern=SINGLE_LINE)]


def new_id() -> str:
    """A fresh random (version 4) UUID as text, which both engines take for a UUID column.

    Formatting 16 random bytes directly is several times cheaper than `str(uuid.uuid4())`,
    which shows in a 10 000-row batch.
    """
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def _digest(*parts: object) -> str:
    return hashlib.blake2b(msgspec.json.encode(parts), digest_size=16).hexdigest()


# What an invoice's or a debtor's content hash is made of, for writers besides this module
# (`backend.imports` writes historical rows an ERP may later push unchanged).
content_digest = _digest


# The rules below see each row as a mapping of its valid fields: a field the schema
# refused (or that is missing) is absent, and the rules that need it are skipped, since
# the schema's own error already names it.


def _date_errors(path: str, value: date | None) -> Iterable[FieldError]:
    if value is not None and not EARLIEST <= value <= LATEST:
        yield FieldError(path, f"date must lie between {EARLIEST} and {LATEST}")


def _currency_errors(path: str, currency: str | None, scope: TenantScope) -> Iterable[FieldError]:
    if currency is None:
        return
    if currency not in CURRENCIES:
        yield FieldError(path, f"unknown currency {currency!r}")
    elif currency != scope.currency:
        yield FieldError(path, f"currency must be the tenant's currency {scope.currency}")


def _duplicate_errors(prefix: str, ids: Sequence[str | None]) -> list[FieldError]:
    first: dict[str, int] = {}
    errors = []
    for i, external_id in enumerate(ids):
        if external_id is None:
            continue
        if external_id in first:
            errors.append(
                FieldError(
                    f"{prefix}[{i}].external_id",
                    f"duplicate external_id {external_id!r} (also at {prefix}[{first[external_id]}])",
                )
            )
        else:
            first[external_id] = i
    return errors


def invoice_rule_errors(body: Mapping[str, Any], scope: TenantScope) -> list[FieldError]:
    rows: Sequence[Mapping[str, Any]] = body.get("invoices") or ()
    errors = _duplicate_errors("invoices", [row.get("external_id") for row in rows])
    for i, row in enumerate(rows):
        at = f"invoices[{i}]"
        issue, due = row.get("issue_date"), row.get("due_date")
        errors.extend(_date_errors(f"{at}.issue_date", issue))
        errors.extend(_date_errors(f"{at}.due_date", due))
        if issue is not None and due is not None and due < issue:
            errors.append(FieldError(f"{at}.due_date", "due_date is before issue_date"))
        errors.extend(_currency_errors(f"{at}.currency", row.get("currency"), scope))
    return errors


def payment_rule_errors(body: Mapping[str, Any], scope: TenantScope) -> list[FieldError]:
    rows: Sequence[Mapping[str, Any]] = body.get("payments") or ()
    errors = _duplicate_errors("payments", [row.get("external_id") for row in rows])
    for i, row in enumerate(rows):
        errors.extend(_date_errors(f"payments[{i}].paid_date", row.get("paid_date")))
        errors.extend(_currency_errors(f"payments[{i}].currency", row.get("currency"), scope))
    return errors


class DebtorIn(Struct, forbid_unknown_fields=True):
    external_id: ExternalId
    name: Annotated[str, Meta(min_length=1, max_length=256, pattern=SINGLE_LINE)]
    type: Literal["b2b", "b2c"]
    email: (
        Annotated[str, Meta(max_length=254, pattern=r"^[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+(?!\n)$")]
        | None
    ) = None
    phone: Annotated[str, Meta(max_length=32, pattern=r"^\+?[0-9 ()\-]{3,31}(?!\n)$")] | None = None
    address: Annotated[str, Meta(max_length=512, pattern=MULTI_LINE)] | None = None
    org_no: Annotated[str, Meta(max_length=32, pattern=SINGLE_LINE)] | None = None


class InvoiceIn(Struct, forbid_unknown_fields=True):
    external_id: ExternalId
    debtor: DebtorIn
    issue_date: date
    due_date: date
    amount: Amount
    currency: Currency
    reference: Reference | None = None
    e_invoice: bool = False
    fee_agreed: bool = False
    description: Annotated[str, Meta(max_length=1000, pattern=MULTI_LINE)] | None = None


class InvoiceBatch(Struct, forbid_unknown_fields=True):
    invoices: Annotated[list[InvoiceIn], Meta(min_length=1, max_length=MAX_BATCH_ROWS)]
    rules: ClassVar[BodyRules] = invoice_rule_errors


class PaymentIn(Struct, forbid_unknown_fields=True):
    external_id: ExternalId
    amount: Amount
    currency: Currency
    paid_date: date
    invoice_external_id: ExternalId | None = None
    reference: Reference | None = None


class PaymentBatch(Struct, forbid_unknown_fields=True):
    payments: Annotated[list[PaymentIn], Meta(min_length=1, max_length=MAX_BATCH_ROWS)]
    rules: ClassVar[BodyRules] = payment_rule_errors


class InvoiceBatchResult(Struct):
    created: int
    updated: int
    unchanged: int


class PaymentBatchResult(Struct):
    created: int
    duplicates: int
    matched: int
    unmatched: int


INVOICE_COLUMNS = (
    "id",
    "tenant",
    "debtor",
    "external_id",
    "issue_date",
    "due_date",
    "amount",
    "currency",
    "reference",
    "e_invoice",
    "fee_agreed",
    "description",
    "state",
    "paid_amount",
    "content_hash",
    "created_at",
    "updated_at",
    "origin",
)
INVOICE_UPDATES = (
    "debtor",
    "issue_date",
    "due_date",
    "amount",
    "currency",
    "reference",
    "e_invoice",
    "fee_agreed",
    "description",
    "content_hash",
    "updated_at",
    "origin",
)
DEBTOR_COLUMNS = (
    "id",
    "tenant",
    "external_id",
    "name",
    "type",
    "email",
    "phone",
    "address",
    "org_no",
    "content_hash",
    "created_at",
    "updated_at",
)
DEBTOR_UPDATES = (
    "name",
    "type",
    "email",
    "phone",
    "address",
    "org_no",
    "content_hash",
    "updated_at",
)


async def ingest_invoices(scope: TenantScope, batch: InvoiceBatch) -> InvoiceBatchResult:
    errors = invoice_rule_errors({"invoices": [fields_of(r) for r in batch.invoices]}, scope)
    if errors:
        raise InvalidInput(errors)
    tid = scope.tenant_id
    now = datetime.now(UTC)
    # Hashes are computed before the tenant's lock is taken: only the comparison with what
    # is stored, and the writes, need to be serialised.
    debtors = {row.debtor.external_id: row.debtor for row in batch.invoices}  # the last row wins
    debtor_digests = {
        key: _digest(d.name, d.type, d.email, d.phone, d.address, d.org_no)
        for key, d in debtors.items()
    }
    invoices = {row.external_id: row for row in batch.invoices}
    invoice_digests = {
        key: _digest(
            row.debtor.external_id,
            row.issue_date,
            row.due_date,
            row.amount,
            row.currency,
            row.reference,
            row.e_invoice,
            row.fee_agreed,
            row.description,
        )
        for key, row in invoices.items()
    }
    async with write_transaction():
        await scope.lock("ingest")
        known_debtors = await _known(scope, Debtor, list(debtors))
        debtor_ids: dict[str, Any] = {}
        debtor_rows = []
        for external_id, d in debtors.items():
            digest = debtor_digests[external_id]
            existing = known_debtors.get(external_id)
            debtor_ids[external_id] = existing[0] if existing else new_id()
            if existing is None or existing[1] != digest:
                debtor_rows.append(
                    (
                        debtor_ids[external_id],
                        tid,
                        external_id,
                        d.name,
                        d.type,
                        d.email,
                        d.phone,
                        d.address,
                        d.org_no,
                        digest,
                        now,
                        now,
                    )
                )
        await scope.upsert(
            Debtor, DEBTOR_COLUMNS, debtor_rows, ("tenant", "external_id"), DEBTOR_UPDATES
        )
        stored = await scope.fetch_where_in(
            Invoice, ("external_id", "id", "content_hash", "origin"), "external_id", list(invoices)
        )
        known = {row["external_id"]: (row["id"], row["content_hash"]) for row in stored}
        # An invoice loaded by an import is history the dunning engine leaves alone; the
        # ERP pushing it makes it live (`origin`), so it is written even when unchanged.
        historical = {row["external_id"] for row in stored if row["origin"] != "live"}
        created: list[tuple[Any, ...]] = []
        updated: list[tuple[Any, ...]] = []
        for external_id, row in invoices.items():
            digest = invoice_digests[external_id]
            existing = known.get(external_id)
            if existing is not None and existing[1] == digest and external_id not in historical:
                continue
            (updated if existing else created).append(
                (
                    existing[0] if existing else new_id(),
                    tid,
                    debtor_ids[row.debtor.external_id],
                    external_id,
                    row.issue_date,
                    row.due_date,
                    row.amount,
                    row.currency,
                    row.reference,
                    row.e_invoice,
                    row.fee_agreed,
                    row.description,
                    "active",
                    0,
                    digest,
                    now,
                    now,
                    "live",
                )
            )
        await scope.upsert(
            Invoice, INVOICE_COLUMNS, created + updated, ("tenant", "external_id"), INVOICE_UPDATES
        )
        # An amount may have changed under its payments, and payments that arrived before
        # their invoice can now be matched.
        try:
            await settlement.match_waiting_payments(
                scope, [r[3] for r in created], [r[8] for r in created if r[8]]
            )
            await settlement.resettle(scope, [r[0] for r in updated])
        except settlement.PaidTotalTooLarge as exc:
            raise InvalidInput(_paid_past_limit_rows(batch, created + updated, exc)) from None
        result = InvoiceBatchResult(
            len(created), len(updated), len(invoices) - len(created) - len(updated)
        )
        await scope.audit(
            "invoices.batch",
            "invoice",
            None,
            **msgspec.structs.asdict(result),
        )
    return result


def _paid_past_limit_rows(
    batch: InvoiceBatch, written: list[tuple[Any, ...]], exc: settlement.PaidTotalTooLarge
) -> list[FieldError]:
    """The batch rows of invoices whose waiting payments would pass `settlement.MAX_PAID`."""
    external_ids = {str(r[0]): r[3] for r in written}
    at = {row.external_id: i for i, row in enumerate(batch.invoices)}
    return [
        FieldError(
            f"invoices[{at[external_ids[str(invoice_id)]]}].external_id",
            f"the payments waiting for this invoice add up to more than "
            f"{settlement.MAX_PAID} minor units",
        )
        for invoice_id in exc.invoice_ids
    ]


async def _refuse_paid_past_limit(
    scope: TenantScope, matched_rows: list[tuple[int, UUID, int]]
) -> None:
    """Refuse the batch at the row from which an invoice's payments pass `MAX_PAID`.

    Checked before anything is written, on the stored paid amounts plus this batch in
    order: one row per invoice is named, the first one over.
    """
    if not matched_rows:
        return
    totals = await settlement.paid_so_far(scope, [invoice_id for _, invoice_id, _ in matched_rows])
    errors: list[FieldError] = []
    named: set[UUID] = set()
    for i, invoice_id, amount in matched_rows:
        totals[invoice_id] = totals.get(invoice_id, 0) + amount
        if totals[invoice_id] > settlement.MAX_PAID and invoice_id not in named:
            named.add(invoice_id)
            errors.append(
                FieldError(
                    f"payments[{i}].amount",
                    f"from this payment on, the invoice's payments add up to more than "
                    f"{settlement.MAX_PAID} minor units",
                )
            )
    if errors:
        raise InvalidInput(errors)


async def _known(
    scope: TenantScope, table: type[Table], external_ids: list[str]
) -> dict[str, tuple[Any, str]]:
    """external_id -> (id, content_hash) of the rows of this batch that exist already."""
    rows = await scope.fetch_where_in(
        table, ("external_id", "id", "content_hash"), "external_id", external_ids
    )
    return {row["external_id"]: (row["id"], row["content_hash"]) for row in rows}


PAYMENT_COLUMNS = (
    "id",
    "tenant",
    "invoice",
    "external_id",
    "amount",
    "currency",
    "paid_date",
    "invoice_external_id",
    "reference",
    "matched_by",
    "matched_at",
    "created_at",
)


async def ingest_payments(scope: TenantScope, batch: PaymentBatch) -> PaymentBatchResult:
    errors = payment_rule_errors({"payments": [fields_of(r) for r in batch.payments]}, scope)
    if errors:
        raise InvalidInput(errors)
    tid = scope.tenant_id
    now = datetime.now(UTC)
    async with write_transaction():
        await scope.lock("ingest")
        existing = {
            row["external_id"]
            for row in await scope.fetch_where_in(
                Payment, ("external_id",), "external_id", [p.external_id for p in batch.payments]
            )
        }
        fresh = [(i, p) for i, p in enumerate(batch.payments) if p.external_id not in existing]
        targets = await settlement.find_invoices(
            scope,
            [p.invoice_external_id for _, p in fresh if p.invoice_external_id],
            [p.reference for _, p in fresh if p.reference],
        )
        rows = []
        matched_invoices = set()
        matched_rows: list[tuple[int, UUID, int]] = []
        for i, p in fresh:
            invoice_id, how = targets.match(p.invoice_external_id, p.reference)
            if invoice_id is not None:
                matched_invoices.add(invoice_id)
                matched_rows.append((i, invoice_id, p.amount))
            rows.append(
                (
                    new_id(),
                    tid,
                    invoice_id,
                    p.external_id,
                    p.amount,
                    p.currency,
                    p.paid_date,
                    p.invoice_external_id,
                    p.reference,
                    how,
                    now if how else None,
                    now,
                )
            )
        await _refuse_paid_past_limit(scope, matched_rows)
        await scope.upsert(Payment, PAYMENT_COLUMNS, rows, ("tenant", "external_id"), ())
        await settlement.resettle(scope, list(matched_invoices))
        matched = sum(1 for r in rows if r[2] is not None)
        result = PaymentBatchResult(
            len(rows), len(batch.payments) - len(rows), matched, len(rows) - matched
        )
        await scope.audit(
            "payments.batch",
            "payment",
            None,
            **msgspec.structs.asdict(result),
        )
    return result
