"""The demo book is this week's book: a later `kravlab demo` moves its dates to today."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, timedelta
from uuid import UUID

from backend import demo
from backend.tables import Invoice, Payment, PolicyVersion, Simulation, TenantModel
from tenants.tables import AuditEntry


async def _dates(tenant_id: str) -> dict[str, tuple]:
    tid = UUID(tenant_id)
    rows = await Invoice.select(
        Invoice.id, Invoice.issue_date, Invoice.due_date, Invoice.settled_date
    ).where(Invoice.tenant == tid)
    paid = await Payment.select(Payment.id, Payment.paid_date).where(Payment.tenant == tid)
    found = {str(r["id"]): (r["issue_date"], r["due_date"], r["settled_date"]) for r in rows}
    found.update({str(r["id"]): (r["paid_date"],) for r in paid})
    return found


async def test_a_later_demo_moves_the_book_to_today(settings, tmp_path):
    settings = dataclasses.replace(settings, var_dir=tmp_path)
    today = date.today()
    seeded_on = today - timedelta(days=40)
    first = await demo.seed(settings, today=seeded_on)
    tenant = first["tenants"][0]["id"]
    before = await _dates(tenant)
    assert len(first["tenants"]) == 3  # a portfolio, not a pair
    for seeded in first["tenants"]:
        tid = UUID(seeded["id"])
        # a fitted model and finished simulations: a forecast in the first minute
        models = await TenantModel.select(TenantModel.status).where(TenantModel.tenant == tid)
        assert [m["status"] for m in models] == ["done"]
        sims = await Simulation.select(Simulation.status, Simulation.result).where(
            Simulation.tenant == tid
        )
        assert len(sims) == 3 and all(s["status"] == "done" and s["result"] for s in sims)
        # its policies went live through the gate, not around it
        live = await PolicyVersion.count().where(
            (PolicyVersion.tenant == tid) & (PolicyVersion.status == "live")
        )
        assert live == 2
        activations = await AuditEntry.select(AuditEntry.detail).where(
            (AuditEntry.tenant == tid) & (AuditEntry.action == "policy.activated")
        )
        assert len(activations) == 2
        assert all(json.loads(a["detail"])["override_reason"] is None for a in activations)
    assert max(d[0] for d in before.values() if len(d) == 3) <= seeded_on

    again = await demo.seed(settings, today=today)
    assert again["tenants"] == first["tenants"] and again["admin"] == first["admin"]
    after = await _dates(tenant)
    shift = timedelta(days=40)
    assert after.keys() == before.keys()
    for key, old in before.items():
        assert after[key] == tuple(d + shift if d else None for d in old), key
    # the book now reaches this week, with invoices open, overdue and paid as of today
    issued = [d[0] for d in after.values() if len(d) == 3]
    assert today - timedelta(days=14) <= max(issued) <= today
    open_overdue = sum(1 for d in after.values() if len(d) == 3 and d[2] is None and d[1] < today)
    not_due = sum(1 for d in after.values() if len(d) == 3 and d[2] is None and d[1] >= today)
    assert open_overdue and not_due
    kept = json.loads((tmp_path / "demo-credentials.json").read_text())
    assert kept["book_as_of"] == today.isoformat()

    await demo.seed(settings, today=today)  # the same day: nothing moves
    assert await _dates(tenant) == after
