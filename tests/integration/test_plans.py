"""Payment plans: within the policy's limits, instalments kept by payments, a missed one
resumes the flow, a paid invoice completes the plan."""

from __future__ import annotations

from datetime import date, timedelta
from uuid import UUID, uuid4

from backend.dunning import record
from tenants.access import Principal
from tenants.scope import TenantScope
from tests.support.world import OVERRIDE, invoice, login, onboard, payment

POLICY = {
    "name": "With plans",
    "steps": [{"day": 5, "action": "reminder", "channel": "email"}],
    "payment_plans": {
        "allowed": True,
        "max_installments": 3,
        "min_amount": 50_000,
        "setup_fee": 17_000,
    },
}


async def _tenant(client, admin, policy=POLICY):
    tenant = await onboard(client, admin)
    session = await login(client, tenant.admin_email, tenant.admin_password)
    made = await client.post(tenant.path("/policies"), json={"policy": policy}, headers=session)
    await client.post(
        tenant.path(f"/policies/{made.json()['id']}/versions/1/activate"),
        json=OVERRIDE,
        headers=admin,
    )
    today = date.today()
    rows = [
        invoice(
            f"PL-{i}", debtor=f"D-{i}", issue=today - timedelta(days=40), due_in=30, amount=amount
        )
        for i, amount in enumerate((90_000, 90_000, 10_000))
    ]
    await client.post(tenant.path("/invoices/batch"), json={"invoices": rows}, headers=tenant.key)
    items = (await client.get(tenant.path("/invoices"), headers=session)).json()["items"]
    return tenant, session, {i["external_id"]: i["id"] for i in items}


async def test_a_plan_holds_the_flow_until_an_instalment_is_missed(client, admin):
    tenant, session, ids = await _tenant(client, admin)
    today = date.today()
    path = tenant.path(f"/invoices/{ids['PL-0']}/payment-plan")
    made = await client.post(
        path, json={"installments": 3, "first_due": today.isoformat()}, headers=session
    )
    assert made.status_code == 201, made.text
    plan = made.json()
    # 900 kr + the 170 kr set-up fee in three instalments of whole öre
    assert [i["amount"] for i in plan["instalments"]] == [35_667, 35_667, 35_666]
    assert [i["due_date"] for i in plan["instalments"]] == [
        (today + timedelta(days=30 * n)).isoformat() for n in range(3)
    ]
    detail = (await client.get(tenant.path(f"/invoices/{ids['PL-0']}"), headers=session)).json()
    assert detail["status"] == "planned" and detail["fees"] == 17_000
    again = await client.post(
        path, json={"installments": 2, "first_due": today.isoformat()}, headers=session
    )
    assert again.status_code == 409

    # a planned invoice takes no step; the first instalment is paid, so tomorrow it holds
    preview = (await client.get(tenant.path("/dunning/preview"), headers=session)).json()
    assert "PL-0" not in {s["external_id"] for s in preview["steps"]}
    pay = payment("PAY-1", 35_667, invoice_external_id="PL-0")
    await client.post(tenant.path("/payments/batch"), json={"payments": [pay]}, headers=tenant.key)
    got = (await client.get(path, headers=session)).json()
    assert [i["paid"] for i in got["instalments"]] == [35_667, 0, 0]
    run = await client.post(tenant.path("/dunning/run"), json={}, headers=session)
    assert run.status_code == 200
    assert (await client.get(path, headers=session)).json()["status"] == "active"

    # an unpaid plan whose first instalment's day has passed breaks at the next run
    other = tenant.path(f"/invoices/{ids['PL-1']}/payment-plan")
    made = await client.post(
        other, json={"installments": 2, "first_due": today.isoformat()}, headers=session
    )
    assert made.status_code == 201
    tomorrow = today + timedelta(days=1)
    staff = Principal.user(uuid4(), None, "agency_admin", "t@a.test")
    scope = await TenantScope.open(UUID(tenant.id), staff)
    await record(scope, tomorrow)  # the run of tomorrow, as the scheduler will make it
    assert (await client.get(other, headers=session)).json()["status"] == "broken"
    kinds = [
        e["kind"]
        for e in (await client.get(tenant.path("/events?limit=100"), headers=session)).json()[
            "items"
        ]
    ]
    assert kinds.count("plan_created") == 2 and kinds.count("instalment_missed") == 1
    detail = (await client.get(tenant.path(f"/invoices/{ids['PL-1']}"), headers=session)).json()
    assert detail["status"] == "overdue"  # back in the flow


async def test_plans_keep_to_the_policy(client, admin):
    tenant, session, ids = await _tenant(client, admin)
    today = date.today().isoformat()
    cases = [
        (ids["PL-0"], {"installments": 4, "first_due": today}, 422, "installments"),
        (ids["PL-2"], {"installments": 2, "first_due": today}, 422, "$"),  # below the minimum
        (ids["PL-0"], {"installments": 2, "first_due": "2001-01-01"}, 422, "first_due"),
        (ids["PL-0"], {"installments": 1, "first_due": today}, 422, "installments"),
        (ids["PL-0"], {"installments": 2}, 422, "first_due"),
        (ids["PL-0"], {"installments": "2", "first_due": today}, 422, "installments"),
    ]
    for invoice_id, body, status, where in cases:
        r = await client.post(
            tenant.path(f"/invoices/{invoice_id}/payment-plan"), json=body, headers=session
        )
        assert r.status_code == status, (body, r.text)
        assert where in {e["path"] for e in r.json()["errors"]}, (body, r.text)
    missing = tenant.path("/invoices/00000000-0000-4000-8000-000000000000/payment-plan")
    r = await client.post(missing, json={"installments": 2, "first_due": today}, headers=session)
    assert r.status_code == 404
    no_plans = {**POLICY, "payment_plans": {"allowed": False}}
    other, other_session, other_ids = await _tenant(client, admin, no_plans)
    r = await client.post(
        other.path(f"/invoices/{other_ids['PL-0']}/payment-plan"),
        json={"installments": 2, "first_due": today},
        headers=other_session,
    )
    assert r.status_code == 422 and "allows no payment plans" in r.text
