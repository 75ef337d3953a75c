"""Direct looks at the database, for assertions the API cannot make (nothing half-written)."""

from __future__ import annotations

from uuid import UUID

from backend.tables import Debtor, IdempotencyRecord, Invoice, InvoiceEvent, Payment
from tenants.tables import ApiKey, AuditEntry, Tenant, User

TENANT_OWNED = (Debtor, Invoice, Payment, InvoiceEvent, ApiKey, User, AuditEntry)


async def row_counts(tenant_id: str | UUID) -> dict[str, int]:
    tid = UUID(str(tenant_id))
    counts = {t._meta.tablename: await t.count().where(t.tenant == tid) for t in TENANT_OWNED}
    counts["tenants"] = await Tenant.count().where(Tenant.id == tid)
    counts["idempotency_records"] = await IdempotencyRecord.count().where(
        IdempotencyRecord.owner == str(tid)
    )
    return counts


async def book_counts(tenant_id: str | UUID) -> tuple[int, int, int]:
    tid = UUID(str(tenant_id))
    return (
        await Debtor.count().where(Debtor.tenant == tid),
        await Invoice.count().where(Invoice.tenant == tid),
        await Payment.count().where(Payment.tenant == tid),
    )
