"""The scope's bulk methods keep to their tenant on the real engine (SQLite and PostgreSQL).

`backend/bulk.py` once took a raw tenant id and updated rows by id alone; the bulk path is
now the scope's, so a row id of another tenant is simply not there for it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from uuid import UUID, uuid4

from backend.ingest import PAYMENT_COLUMNS
from backend.tables import Invoice, Payment
from tenants.access import Principal
from tenants.scope import TenantScope
from tenants.transactions import write_transaction
from tests.support.world import invoice


async def _scopes(client, admin, tenant, other):
    for t, ext in ((tenant, "ONLY-A"), (other, "ONLY-B")):
        r = await client.post(
            t.path("/invoices/batch"), json={"invoices": [invoice(ext)]}, headers=t.key
        )
        assert r.status_code == 200, r.text
    staff = Principal.user(uuid4(), None, "agency_admin", "bulk@agency.test")
    a = await TenantScope.open(UUID(tenant.id), staff)
    b = await TenantScope.open(UUID(other.id), staff)
    return a, b


async def test_bulk_methods_never_cross_tenants(client, admin, tenant):
    from tests.support.world import onboard

    other = await onboard(client, admin)
    a, b = await _scopes(client, admin, tenant, other)
    async with write_transaction():  # the bulk path runs inside the caller's transaction
        found = await b.fetch_where_in(Invoice, ("id",), "external_id", ["ONLY-B"])
        b_invoice = found[0]["id"]
        # lookups: B's row is not found through A
        assert await a.fetch_where_in(Invoice, ("id",), "external_id", ["ONLY-B"]) == []
        assert await a.fetch_where_in(Invoice, ("id",), "id", [b_invoice]) == []

    # updates by id: B's invoice is untouched by A's update_many
    async with write_transaction():
        await a.update_many(Invoice, "id", ("paid_amount",), [(123, UUID(str(b_invoice)))])
    row = await Invoice.select(Invoice.paid_amount).where(Invoice.id == b_invoice).first()
    assert row["paid_amount"] == 0

    # upserts: whatever tenant a row names, it lands in the scope's tenant
    now = datetime.now(UTC)
    smuggled = (uuid4(), UUID(other.id), None, "SMUGGLED", 100, "SEK", date.today())
    smuggled += (None, None, None, None, now)
    async with write_transaction():
        await a.upsert(Payment, PAYMENT_COLUMNS, [smuggled], ("tenant", "external_id"), ())
    landed = await Payment.select(Payment.tenant).where(Payment.external_id == "SMUGGLED")
    assert [str(r["tenant"]) for r in landed] == [tenant.id]
