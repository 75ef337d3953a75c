"""Escalation opens a collection case; agency staff work it across tenants; tenants see theirs."""

from __future__ import annotations

from datetime import date, timedelta
from uuid import uuid4

from tests.support.world import OVERRIDE, agency_user, invoice, login, onboard

POLICY = {
    "name": "Escalating",
    "steps": [{"day": 5, "action": "reminder", "channel": "email"}],
    "escalate_after_days": 30,
}


async def test_escalation_opens_a_case_that_staff_work_to_its_end(client, admin):
    tenant = await onboard(client, admin)
    session = await login(client, tenant.admin_email, tenant.admin_password)
    made = await client.post(tenant.path("/policies"), json={"policy": POLICY}, headers=session)
    await client.post(
        tenant.path(f"/policies/{made.json()['id']}/versions/1/activate"),
        json=OVERRIDE,
        headers=admin,
    )
    today = date.today()
    rows = [
        invoice("OLD", debtor="D-O", issue=today - timedelta(days=65), due_in=30),
        invoice("YOUNG", debtor="D-Y", issue=today - timedelta(days=40), due_in=30),
    ]
    await client.post(tenant.path("/invoices/batch"), json={"invoices": rows}, headers=tenant.key)

    preview = (await client.get(tenant.path("/dunning/preview"), headers=session)).json()
    assert [e["external_id"] for e in preview["escalations"]] == ["OLD"]
    assert [s["external_id"] for s in preview["steps"]] == ["YOUNG"]  # no step for OLD
    run = (await client.post(tenant.path("/dunning/run"), json={}, headers=session)).json()
    assert run["escalated"] == 1 and run["recorded"] == 1
    again = (await client.post(tenant.path("/dunning/run"), json={}, headers=session)).json()
    assert again["escalated"] == 0  # once

    opened = (await client.get(tenant.path("/events?kind=case_opened"), headers=session)).json()
    assert len(opened["items"]) == 1 and opened["items"][0]["data"]["outstanding"] == 100_000
    own = (await client.get(tenant.path("/cases"), headers=session)).json()["items"]
    assert len(own) == 1 and own[0]["invoice_external_id"] == "OLD"
    assert own[0]["status"] == "open" and own[0]["amount"] == 100_000
    case_path = tenant.path(f"/cases/{own[0]['id']}")
    old = await client.get(tenant.path(f"/invoices/{own[0]['invoice_id']}"), headers=session)
    assert old.json()["status"] == "in_collection"

    # the agency's queue holds it; a tenant's credential has no queue of its own
    staff = await agency_user(client, "agency_staff")
    queue = (await client.get("/api/v1/cases?status=open&limit=1000", headers=staff)).json()
    assert own[0]["id"] in {c["id"] for c in queue["items"]}
    assert (await client.get("/api/v1/cases", headers=session)).status_code == 403
    # the tenant reads, staff work it
    assert (
        await client.post(case_path + "/notes", json={"text": "x"}, headers=session)
    ).status_code == 403
    me = (await client.get("/api/v1/me", headers=staff)).json()
    assigned = await client.post(case_path + "/assign", json={"assignee": me["id"]}, headers=staff)
    assert assigned.status_code == 200 and assigned.json()["assignee"] == me["id"]
    bad = await client.post(case_path + "/assign", json={"assignee": str(uuid4())}, headers=staff)
    assert bad.status_code == 422
    noted = await client.post(
        case_path + "/notes", json={"text": "called, no answer"}, headers=staff
    )
    assert [n["text"] for n in noted.json()["notes"]] == ["called, no answer"]
    paid = await client.post(case_path + "/close", json={"outcome": "paid"}, headers=staff)
    assert paid.status_code == 409  # the invoice is not paid
    closed = await client.post(case_path + "/close", json={"outcome": "written_off"}, headers=staff)
    assert closed.status_code == 200 and closed.json()["outcome"] == "written_off"
    assert (
        await client.post(case_path + "/close", json={"outcome": "written_off"}, headers=staff)
    ).status_code == 409
    old = await client.get(tenant.path(f"/invoices/{own[0]['invoice_id']}"), headers=session)
    assert old.json()["status"] == "written_off"

    # another tenant never sees it
    other = await onboard(client, admin)
    other_session = await login(client, other.admin_email, other.admin_password)
    assert (await client.get(other.path("/cases"), headers=other_session)).json()["items"] == []
    r = await client.get(tenant.path(f"/cases/{own[0]['id']}"), headers=other_session)
    assert r.status_code == 404
    r = await client.get(other.path(f"/cases/{own[0]['id']}"), headers=other_session)
    assert r.status_code == 404
