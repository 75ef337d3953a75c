"""Onboarding, listing, suspending and offboarding tenants; users and API keys."""

from __future__ import annotations

import pytest

from tests.support.db import row_counts
from tests.support.world import (
    PASSWORD,
    api_key,
    bearer,
    invoice,
    login,
    onboard,
    payment,
    tenant_user,
)


async def test_onboarding_returns_secrets_once_and_they_work(client, admin):
    t = await onboard(client, admin)
    me = (await client.get("/api/v1/me", headers=t.key)).json()
    assert me["kind"] == "key" and me["tenant_id"] == t.id
    assert set(me["scopes"]) == {"invoices:write", "payments:write", "read"}
    session = await login(client, t.admin_email, t.admin_password)
    me = (await client.get("/api/v1/me", headers=session)).json()
    assert (me["kind"], me["role"], me["tenant_id"]) == ("user", "tenant_admin", t.id)
    keys = (await client.get(t.path("/api-keys"), headers=session)).json()["items"]
    assert len(keys) == 1 and "key" not in keys[0] and t.api_key.startswith(keys[0]["prefix"])
    assert keys[0]["last_used_at"] is not None  # the key was used above


async def test_onboarding_conflicts_and_bad_input(client, admin):
    t = await onboard(client, admin)
    body = {
        "name": "X",
        "slug": t.slug,
        "country": "SE",
        "currency": "SEK",
        "admin_email": "new@x.test",
    }
    r = await client.post("/api/v1/tenants", json=body, headers=admin)
    assert r.status_code == 409
    # Another tenant's admin address is no conflict: tenants are separate namespaces.
    r = await client.post(
        "/api/v1/tenants",
        json={**body, "slug": f"fresh-{t.slug}", "admin_email": t.admin_email},
        headers=admin,
    )
    assert r.status_code == 201
    r = await client.post(
        "/api/v1/tenants",
        json={
            "name": "",
            "slug": "Bad Slug!",
            "country": "XX",
            "currency": "ABC",
            "admin_email": "nope",
            "extra": 1,
        },
        headers=admin,
    )
    assert r.status_code == 422
    paths = {e["path"] for e in r.json()["errors"]}
    assert {"name", "admin_email", "extra"} <= paths
    r = await client.post(
        "/api/v1/tenants",
        json={
            "name": "Y",
            "slug": "Bad Slug!",
            "country": "XX",
            "currency": "ABC",
            "admin_email": "a@b.se",
        },
        headers=admin,
    )
    assert r.status_code == 422
    assert {e["path"] for e in r.json()["errors"]} == {"slug", "country", "currency"}
    # a trailing line break once passed the slug's `$` (found by Schemathesis)
    trailing = {"name": "Z", "slug": "x\n", "country": "SE", "currency": "SEK"}
    r = await client.post(
        "/api/v1/tenants", json={**trailing, "admin_email": "z@b.se"}, headers=admin
    )
    assert r.status_code == 422 and {e["path"] for e in r.json()["errors"]} == {"slug"}
    listed = (await client.get("/api/v1/tenants?limit=1000", headers=admin)).json()["items"]
    assert "fresh-slug-1" not in {x["slug"] for x in listed}


async def test_tenant_users_see_only_their_tenant(client, admin):
    a, b = await onboard(client, admin), await onboard(client, admin)
    member = await tenant_user(
        client, a, await login(client, a.admin_email, a.admin_password), "tenant_member"
    )
    items = (await client.get("/api/v1/tenants", headers=member)).json()["items"]
    assert [x["id"] for x in items] == [a.id]
    assert (await client.get(f"/api/v1/tenants/{b.id}", headers=member)).status_code == 404
    assert (await client.get(f"/api/v1/tenants/{a.id}", headers=member)).status_code == 200
    seen: set[str] = set()
    cursor = None
    while True:  # the agency pages through every tenant
        url = "/api/v1/tenants?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(url, headers=admin)).json()
        seen |= {x["id"] for x in page["items"]}
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert {a.id, b.id} <= seen


async def test_suspension_blocks_tenant_credentials_at_once(client, admin):
    t = await onboard(client, admin)
    session = await login(client, t.admin_email, t.admin_password)
    r = await client.patch(f"/api/v1/tenants/{t.id}", json={"status": "suspended"}, headers=admin)
    assert r.status_code == 200 and r.json()["status"] == "suspended"
    for headers in (t.key, session):
        assert (await client.get("/api/v1/me", headers=headers)).status_code == 403
    r = await client.post(
        "/api/v1/auth/login", json={"email": t.admin_email, "password": t.admin_password}
    )
    assert r.status_code == 403
    assert (
        await client.get(t.path("/invoices"), headers=admin)
    ).status_code == 200  # the agency still sees it
    r = await client.patch(
        f"/api/v1/tenants/{t.id}", json={"status": "active", "name": "Renamed AB"}, headers=admin
    )
    assert r.json()["name"] == "Renamed AB"
    assert (await client.get("/api/v1/me", headers=t.key)).status_code == 200
    r = await client.patch(f"/api/v1/tenants/{t.id}", json={"status": "paused"}, headers=admin)
    assert r.status_code == 422


async def test_offboarding_erases_every_row(client, admin):
    t = await onboard(client, admin)
    session = await login(client, t.admin_email, t.admin_password)
    await tenant_user(client, t, session, "tenant_member")
    await api_key(client, t, session, ["read"])
    rows = [invoice(f"INV-{i}", debtor=f"D-{i % 3}") for i in range(20)]
    assert (
        await client.post(t.path("/invoices/batch"), json={"invoices": rows}, headers=t.key)
    ).status_code == 200
    payments = [
        payment("P-1", 100_000, invoice_external_id="INV-1"),
        payment("P-2", 5, reference="nothing"),
    ]
    r = await client.post(
        t.path("/payments/batch"),
        json={"payments": payments},
        headers={**t.key, "Idempotency-Key": "offboard-1"},
    )
    assert r.status_code == 200
    # an open invoice: the first by due date could be the one P-1 paid, which cannot be paused
    invoices = (await client.get(t.path("/invoices?status=open&limit=1"), headers=t.key)).json()
    r = await client.post(
        t.path(f"/invoices/{invoices['items'][0]['id']}/pause"),
        json={"reason": "call"},
        headers=t.key,
    )
    assert r.status_code == 200
    before = await row_counts(t.id)
    assert all(before[name] > 0 for name in before), before

    assert (await client.delete(f"/api/v1/tenants/{t.id}", headers=admin)).status_code == 204
    after = await row_counts(t.id)
    assert all(count == 0 for count in after.values()), after
    assert (await client.get("/api/v1/me", headers=t.key)).status_code == 401
    assert (await client.get(f"/api/v1/tenants/{t.id}", headers=admin)).status_code == 404
    assert (await client.delete(f"/api/v1/tenants/{t.id}", headers=admin)).status_code == 404
    log = (await client.get("/api/v1/audit?limit=1000", headers=admin)).json()["items"]
    assert any(e["action"] == "tenant.offboarded" and e["object_id"] == t.id for e in log)


async def test_api_keys_are_scoped_and_revocable(client, admin, tenant):
    session = await login(client, tenant.admin_email, tenant.admin_password)
    reader = await api_key(client, tenant, session, ["read"])
    assert (await client.get(tenant.path("/invoices"), headers=reader)).status_code == 200
    r = await client.post(
        tenant.path("/invoices/batch"), json={"invoices": [invoice("A")]}, headers=reader
    )
    assert r.status_code == 403
    keys = (await client.get(tenant.path("/api-keys"), headers=session)).json()["items"]
    reader_id = next(k["id"] for k in keys if k["scopes"] == ["read"])
    assert (
        await client.delete(tenant.path(f"/api-keys/{reader_id}"), headers=session)
    ).status_code == 204
    assert (await client.get(tenant.path("/invoices"), headers=reader)).status_code == 401
    keys = (await client.get(tenant.path("/api-keys"), headers=session)).json()["items"]
    assert next(k for k in keys if k["id"] == reader_id)["revoked_at"] is not None
    r = await client.post(
        tenant.path("/api-keys"),
        json={"name": "x", "scopes": ["read", "admin:all"]},
        headers=session,
    )
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "scopes[1]"
    r = await client.post(
        tenant.path("/api-keys"), json={"name": "x", "scopes": []}, headers=session
    )
    assert r.status_code == 422


async def test_invited_users_log_in_with_their_role(client, tenant):
    session = await login(client, tenant.admin_email, tenant.admin_password)
    r = await client.post(
        tenant.path("/users"),
        json={"email": "Member@Example.se", "role": "tenant_member"},
        headers=session,
    )
    assert r.status_code == 201
    member = await login(client, "member@example.se", r.json()["password"])
    me = (await client.get("/api/v1/me", headers=member)).json()
    assert me["role"] == "tenant_member" and me["tenant_id"] == tenant.id
    # a member may not invite or create keys
    assert (
        await client.post(
            tenant.path("/users"),
            json={"email": "m2@example.se", "role": "tenant_admin"},
            headers=member,
        )
    ).status_code == 403
    r = await client.post(
        tenant.path("/users"),
        json={"email": "member@example.se", "role": "tenant_member"},
        headers=session,
    )
    assert r.status_code == 409
    r = await client.post(
        tenant.path("/users"),
        json={"email": "x@example.se", "role": "agency_admin"},
        headers=session,
    )
    assert r.status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        {"email": "nobody@kravlab.test", "password": PASSWORD},
        {"email": "x", "password": ""},
        {"email": 5},
    ],
)
async def test_bad_logins_are_refused(client, body):
    r = await client.post("/api/v1/auth/login", json=body)
    assert r.status_code in (401, 422)
    assert "access_token" not in r.text


async def test_wrong_password_and_forged_tokens(client, tenant):
    r = await client.post(
        "/api/v1/auth/login", json={"email": tenant.admin_email, "password": "wrong"}
    )
    assert r.status_code == 401
    for token in ("not-a-jwt", "kl_madeup", "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."):
        assert (await client.get("/api/v1/me", headers=bearer(token))).status_code == 401
    assert (
        await client.get("/api/v1/me", headers={"Authorization": "Basic abc"})
    ).status_code == 401


async def test_invitations_reveal_nothing_about_other_tenants(client, admin):
    """A probe learned other tenants' users from "409 a user with email … exists"."""
    from tests.support.world import login

    a, b = await onboard(client, admin), await onboard(client, admin)
    a_admin = await login(client, a.admin_email, a.admin_password)
    b_admin = await login(client, b.admin_email, b.admin_password)
    shared = f"accountant-{a.slug}@firm.test"
    first = await client.post(
        a.path("/users"), json={"email": shared, "role": "tenant_member"}, headers=a_admin
    )
    assert first.status_code == 201
    # Tenant B inviting the same person (or A's admin) is answered as for a stranger.
    for email in (shared, a.admin_email):
        r = await client.post(
            b.path("/users"), json={"email": email, "role": "tenant_member"}, headers=b_admin
        )
        assert r.status_code == 201, r.text
    second = r.json()
    # Inside one tenant the address is taken, and saying so reveals only that tenant's users.
    again = await client.post(
        b.path("/users"), json={"email": shared, "role": "tenant_member"}, headers=b_admin
    )
    assert again.status_code == 409 and b.slug not in again.text
    # Each account logs in with its own password into its own tenant.
    me_a = (
        await client.get(
            "/api/v1/me", headers=await login(client, shared, first.json()["password"])
        )
    ).json()
    assert me_a["tenant_id"] == a.id
    me_b = (
        await client.get(
            "/api/v1/me", headers=await login(client, a.admin_email, second["password"])
        )
    ).json()
    assert me_b["tenant_id"] == b.id
    original = await login(client, a.admin_email, a.admin_password)
    assert (await client.get("/api/v1/me", headers=original)).json()["tenant_id"] == a.id
