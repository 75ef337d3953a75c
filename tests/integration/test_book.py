"""Reading the invoice book, flow state changes with their audit trail, the unmatched queue."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from backend.book import STATUSES, status_of
from tests.support.world import invoice, login, onboard, payment, tenant_user


async def push(client, tenant, rows):
    r = await client.post(
        tenant.path("/invoices/batch"), json={"invoices": rows}, headers=tenant.key
    )
    assert r.status_code == 200, r.text


async def ids_by_external(client, tenant):
    items, cursor = [], None
    while True:
        url = tenant.path("/invoices?limit=7") + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(url, headers=tenant.key)).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return {i["external_id"]: i["id"] for i in items}, items


async def listed(client, tenant, query):
    r = await client.get(tenant.path(f"/invoices?limit=1000&{query}"), headers=tenant.key)
    assert r.status_code == 200, r.text
    return sorted(i["external_id"] for i in r.json()["items"])


async def test_cursor_pagination_visits_every_invoice_once_in_due_order(client, tenant):
    today = date.today()
    rows = [
        invoice(f"P-{i:02d}", issue=today - timedelta(days=i % 5), debtor=f"D-{i % 3}")
        for i in range(40)
    ]
    await push(client, tenant, rows)
    ids, items = await ids_by_external(client, tenant)
    assert len(items) == 40 and len(ids) == 40
    keys = [(i["due_date"], i["id"]) for i in items]
    assert keys == sorted(keys)


async def test_filters_and_statuses(client, tenant):
    today = date.today()
    rows = [
        invoice("OPEN", issue=today, due_in=10),
        invoice("OVERDUE", issue=today - timedelta(days=40), due_in=30, debtor="D-late"),
        invoice("PAID", issue=today - timedelta(days=40), due_in=30, amount=500),
        invoice("PAUSED", issue=today - timedelta(days=40), due_in=30),
        invoice("PAUSE-OVER", issue=today - timedelta(days=40), due_in=30),
        invoice("DISPUTED", issue=today - timedelta(days=40), due_in=30),
    ]
    await push(client, tenant, rows)
    await client.post(
        tenant.path("/payments/batch"),
        json={"payments": [payment("PP", 500, invoice_external_id="PAID")]},
        headers=tenant.key,
    )
    ids, _ = await ids_by_external(client, tenant)
    r = await client.post(
        tenant.path(f"/invoices/{ids['PAUSED']}/pause"),
        json={"reason": "customer called"},
        headers=tenant.key,
    )
    assert r.status_code == 200 and r.json()["status"] == "paused"
    r = await client.post(
        tenant.path(f"/invoices/{ids['PAUSE-OVER']}/pause"),
        json={"reason": "until today", "until": today.isoformat()},
        headers=tenant.key,
    )
    assert r.json()["paused_until"] == today.isoformat()
    r = await client.post(
        tenant.path(f"/invoices/{ids['DISPUTED']}/dispute"),
        json={"reason": "wrong amount"},
        headers=tenant.key,
    )
    assert r.json()["status"] == "disputed"

    assert await listed(client, tenant, "status=open") == ["OPEN"]
    assert await listed(client, tenant, "status=overdue") == ["OVERDUE"]
    assert await listed(client, tenant, "status=paid") == ["PAID"]
    assert await listed(client, tenant, "status=paused") == ["PAUSE-OVER", "PAUSED"]
    assert await listed(client, tenant, "status=disputed") == ["DISPUTED"]
    assert await listed(client, tenant, "status=in_collection") == []
    assert await listed(client, tenant, "debtor=D-late") == ["OVERDUE"]
    assert await listed(client, tenant, f"due_from={(today + timedelta(days=1)).isoformat()}") == [
        "OPEN"
    ]
    assert (
        len(await listed(client, tenant, f"due_to={(today - timedelta(days=1)).isoformat()}")) == 5
    )
    overdue = (
        await client.get(tenant.path(f"/invoices/{ids['OVERDUE']}"), headers=tenant.key)
    ).json()
    assert overdue["days_past_due"] == 10 and overdue["outstanding"] == overdue["amount"]
    for bad in (
        "status=lost",
        "limit=0",
        "limit=1001",
        "due_from=yesterday",
        "cursor=%%%",
        "cursor=YWJj",
    ):
        r = await client.get(tenant.path(f"/invoices?{bad}"), headers=tenant.key)
        assert r.status_code in (400, 422), (bad, r.text)


@pytest.mark.parametrize("status", STATUSES)
def test_status_of_covers_every_status(status):
    on = date(2026, 6, 1)
    base = {"settled_date": None, "state": "active", "paused_until": None, "due_date": on}
    cases = {
        "open": base,
        "overdue": {**base, "due_date": on - timedelta(days=1)},
        "paid": {**base, "settled_date": on},
        "paused": {**base, "state": "paused"},
        "disputed": {**base, "state": "disputed"},
        "planned": {**base, "state": "planned"},
        "in_collection": {**base, "state": "in_collection"},
        "written_off": {**base, "state": "written_off"},
    }
    assert status_of(cases[status], on) == status
    assert (
        status_of({**base, "state": "paused", "paused_until": on - timedelta(days=1)}, on) == "open"
    )


async def test_state_changes_are_guarded_and_audited(client, admin, tenant):
    await push(client, tenant, [invoice("S-1", issue=date.today() - timedelta(days=50))])
    ids, _ = await ids_by_external(client, tenant)
    path = tenant.path(f"/invoices/{ids['S-1']}")
    member = await tenant_user(
        client,
        tenant,
        await login(client, tenant.admin_email, tenant.admin_password),
        "tenant_member",
    )
    assert (await client.post(path + "/resume", headers=member)).status_code == 409
    assert (await client.post(path + "/resolve", json={}, headers=member)).status_code == 409
    assert (
        await client.post(path + "/pause", json={"reason": ""}, headers=member)
    ).status_code == 422
    r = await client.post(
        path + "/pause", json={"reason": "x", "until": "2000-01-01"}, headers=member
    )
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "until"
    assert (
        await client.post(path + "/pause", json={"reason": "holiday"}, headers=member)
    ).status_code == 200
    assert (
        await client.post(path + "/dispute", json={"reason": "goods damaged"}, headers=admin)
    ).status_code == 200
    assert (
        await client.post(path + "/pause", json={"reason": "again"}, headers=member)
    ).status_code == 409
    assert (
        await client.post(path + "/resolve", json={"reason": "credit note sent"}, headers=member)
    ).status_code == 200
    r = await client.post(path + "/pause", json={"reason": "a" * 1001}, headers=member)
    assert r.status_code == 422
    detail = (await client.get(path, headers=tenant.key)).json()
    assert detail["status"] == "overdue"
    assert [e["type"] for e in detail["timeline"]] == ["pause", "dispute", "resolve"]
    me = (await client.get("/api/v1/me", headers=member)).json()
    assert detail["timeline"][0]["actor"] == f"user:{me['id']}"
    log = (await client.get(tenant.path("/audit?limit=100"), headers=tenant.key)).json()["items"]
    actions = [e["action"] for e in log if e["object_id"] == ids["S-1"]]
    assert actions == ["invoice.resolve", "invoice.dispute", "invoice.pause"]  # newest first
    agency = (await client.get("/api/v1/me", headers=admin)).json()
    actors = {e["action"]: e["actor"] for e in log if e["object_id"] == ids["S-1"]}
    assert actors == {
        "invoice.pause": f"user:{me['id']}",
        "invoice.dispute": f"user:{agency['id']}",
        "invoice.resolve": f"user:{me['id']}",
    }
    await client.post(
        tenant.path("/payments/batch"),
        json={"payments": [payment("S-PAY", 100_000, invoice_external_id="S-1")]},
        headers=tenant.key,
    )
    assert (
        await client.post(path + "/dispute", json={"reason": "late"}, headers=member)
    ).status_code == 409


async def test_unmatched_queue_and_manual_matching(client, admin, tenant):
    other = await onboard(client, admin)
    await push(client, other, [invoice("THEIRS")])
    their_id = (await ids_by_external(client, other))[0]["THEIRS"]
    await push(client, tenant, [invoice("MINE", amount=3_000)])
    mine = (await ids_by_external(client, tenant))[0]["MINE"]
    r = await client.post(
        tenant.path("/payments/batch"),
        json={"payments": [payment("U-1", 3_000, reference="typo"), payment("U-2", 10)]},
        headers=tenant.key,
    )
    assert r.json()["unmatched"] == 2
    queue = (
        await client.get(tenant.path("/payments?unmatched=true&limit=1"), headers=tenant.key)
    ).json()
    assert len(queue["items"]) == 1 and queue["next_cursor"]
    rest = (
        await client.get(
            tenant.path(f"/payments?unmatched=true&cursor={queue['next_cursor']}"),
            headers=tenant.key,
        )
    ).json()
    by_ext = {p["external_id"]: p["id"] for p in queue["items"] + rest["items"]}
    assert set(by_ext) == {"U-1", "U-2"}
    r = await client.post(
        tenant.path(f"/payments/{by_ext['U-1']}/match"),
        json={"invoice_id": their_id},
        headers=tenant.key,
    )
    assert r.status_code == 404  # another tenant's invoice is simply not there
    r = await client.post(
        tenant.path(f"/payments/{by_ext['U-1']}/match"),
        json={"invoice_id": mine},
        headers=tenant.key,
    )
    assert r.status_code == 200 and r.json()["status"] == "paid"
    assert r.json()["timeline"][0]["matched_by"] == "manual"
    r = await client.post(
        tenant.path(f"/payments/{by_ext['U-1']}/match"),
        json={"invoice_id": mine},
        headers=tenant.key,
    )
    assert r.status_code == 409
    r = await client.post(
        tenant.path(f"/payments/{by_ext['U-2']}/match"),
        json={"invoice_id": "not-a-uuid"},
        headers=tenant.key,
    )
    assert r.status_code == 422
    queue = (await client.get(tenant.path("/payments?unmatched=true"), headers=tenant.key)).json()[
        "items"
    ]
    assert [p["external_id"] for p in queue] == ["U-2"]
    matched = (
        await client.get(tenant.path("/payments?unmatched=false"), headers=tenant.key)
    ).json()["items"]
    assert [p["external_id"] for p in matched] == ["U-1"] and matched[0]["invoice_id"] == mine
    log = (await client.get(tenant.path("/audit"), headers=tenant.key)).json()["items"]
    assert any(e["action"] == "payment.matched" and e["detail"]["invoice_id"] == mine for e in log)
