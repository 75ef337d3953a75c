"""The invoice book of one tenant: batch ingest, reads, flow state and the unmatched queue."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from msgspec import Meta, Struct

from backend import book, ingest
from backend.api.book_schemas import Invoice, InvoiceDetail, Payment, Status
from backend.api.deps import Cursor, Limit
from backend.api.page import Page
from backend.validation import MULTI_LINE, SINGLE_LINE
from tenants.scope import TenantScope

Reason = Annotated[str, Meta(min_length=1, max_length=1000, pattern=MULTI_LINE)]


class PauseIn(Struct, forbid_unknown_fields=True):
    reason: Reason
    until: date | None = None


class ReasonIn(Struct, forbid_unknown_fields=True):
    reason: Reason


class OptionalReasonIn(Struct, forbid_unknown_fields=True):
    reason: Reason | None = None


class MatchIn(Struct, forbid_unknown_fields=True):
    invoice_id: FromPath[UUID]


class InvoiceController(Controller):
    path = "/api/v1/tenants/{tenant_id:uuid}"
    tags = ["invoice book"]

    @post(
        "/invoices/batch",
        status_code=200,
        opt={"permission": "invoices:write", "body": ingest.InvoiceBatch},
        summary="Upsert up to 10 000 invoices by external_id, all or nothing",
    )
    async def invoice_batch(
        self, tenant: NamedDependency[TenantScope], data: JSONBody[ingest.InvoiceBatch]
    ) -> ingest.InvoiceBatchResult:
        return await ingest.ingest_invoices(tenant, data)

    @get("/invoices", opt={"permission": "read"}, summary="List invoices")
    async def list_invoices(
        self,
        tenant: NamedDependency[TenantScope],
        limit: Limit = 50,
        cursor: Cursor = None,
        status: FromQuery[Status | None] = None,
        debtor: Annotated[
            str | None,
            QueryParameter(
                max_length=128, pattern=SINGLE_LINE, description="debtor external_id or id"
            ),
        ] = None,
        external_id: Annotated[
            str | None, QueryParameter(max_length=128, pattern=SINGLE_LINE)
        ] = None,
        due_from: FromQuery[date | None] = None,
        due_to: FromQuery[date | None] = None,
    ) -> Page[Invoice]:
        listed = await book.list_invoices(
            tenant,
            status=status,
            debtor=debtor,
            external_id=external_id,
            due_from=due_from,
            due_to=due_to,
            limit=limit,
            cursor=cursor,
        )
        return msgspec.convert(listed, Page[Invoice])

    @get(
        "/invoices/{invoice_id:uuid}",
        opt={"permission": "read"},
        summary="One invoice with outstanding, status and timeline",
    )
    async def get_invoice(
        self, tenant: NamedDependency[TenantScope], invoice_id: FromPath[UUID]
    ) -> InvoiceDetail:
        return _detail(await book.get_invoice(tenant, invoice_id))

    @post(
        "/invoices/{invoice_id:uuid}/pause",
        status_code=200,
        raises=[book.Conflict],
        opt={"permission": "invoices:manage", "body": PauseIn},
        summary="Stop the flow",
    )
    async def pause(
        self,
        tenant: NamedDependency[TenantScope],
        invoice_id: FromPath[UUID],
        data: JSONBody[PauseIn],
    ) -> InvoiceDetail:
        return _detail(
            await book.change_state(tenant, invoice_id, "pause", data.reason, data.until)
        )

    @post(
        "/invoices/{invoice_id:uuid}/resume",
        status_code=200,
        raises=[book.Conflict],
        opt={"permission": "invoices:manage", "body": OptionalReasonIn},
        summary="Restart the flow",
    )
    async def resume(
        self,
        tenant: NamedDependency[TenantScope],
        invoice_id: FromPath[UUID],
        data: JSONBody[OptionalReasonIn | None] = None,
    ) -> InvoiceDetail:
        reason = (data and data.reason) or ""
        return _detail(await book.change_state(tenant, invoice_id, "resume", reason))

    @post(
        "/invoices/{invoice_id:uuid}/dispute",
        status_code=200,
        raises=[book.Conflict],
        opt={"permission": "invoices:manage", "body": ReasonIn},
        summary="Dispute: no contacts and no escalation",
    )
    async def dispute(
        self,
        tenant: NamedDependency[TenantScope],
        invoice_id: FromPath[UUID],
        data: JSONBody[ReasonIn],
    ) -> InvoiceDetail:
        return _detail(await book.change_state(tenant, invoice_id, "dispute", data.reason))

    @post(
        "/invoices/{invoice_id:uuid}/resolve",
        status_code=200,
        raises=[book.Conflict],
        opt={"permission": "invoices:manage", "body": OptionalReasonIn},
        summary="Resolve a dispute",
    )
    async def resolve(
        self,
        tenant: NamedDependency[TenantScope],
        invoice_id: FromPath[UUID],
        data: JSONBody[OptionalReasonIn | None] = None,
    ) -> InvoiceDetail:
        reason = (data and data.reason) or ""
        return _detail(await book.change_state(tenant, invoice_id, "resolve", reason))

    @post(
        "/payments/batch",
        status_code=200,
        opt={"permission": "payments:write", "body": ingest.PaymentBatch},
        summary="Record payments, matched by invoice id or reference",
    )
    async def payment_batch(
        self, tenant: NamedDependency[TenantScope], data: JSONBody[ingest.PaymentBatch]
    ) -> ingest.PaymentBatchResult:
        return await ingest.ingest_payments(tenant, data)

    @get(
        "/payments", opt={"permission": "read"}, summary="List payments (unmatched=true: the queue)"
    )
    async def list_payments(
        self,
        tenant: NamedDependency[TenantScope],
        limit: Limit = 50,
        cursor: Cursor = None,
        unmatched: FromQuery[bool | None] = None,
    ) -> Page[Payment]:
        listed = await book.list_payments(tenant, unmatched=unmatched, limit=limit, cursor=cursor)
        return msgspec.convert(listed, Page[Payment])

    @post(
        "/payments/{payment_id:uuid}/match",
        status_code=200,
        raises=[book.Conflict],
        opt={"permission": "payments:match", "body": MatchIn},
        summary="Match a payment by hand",
    )
    async def match(
        self,
        tenant: NamedDependency[TenantScope],
        payment_id: FromPath[UUID],
        data: JSONBody[MatchIn],
    ) -> InvoiceDetail:
        return _detail(await book.match_payment(tenant, payment_id, data.invoice_id))


def _detail(invoice: dict[str, object]) -> InvoiceDetail:
    return msgspec.convert(invoice, InvoiceDetail)
