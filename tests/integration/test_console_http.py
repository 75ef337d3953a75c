"""The console over plain HTTP: cookie login, every page for each role, another tenant's
pages missing, actions through the API's services, CSRF and logout.

A second tenant's book carries a marker string; no page a first-tenant user can open may
show it (the browser tests in tests/e2e look at the same pages rendered).
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tenants.onboarding import create_agency_user
from tests.support.world import PASSWORD, invoice, login, onboard, payment

HTML = {"Accept": "text/html"}


@contextlib.asynccontextmanager
async def console_login(base_url: str, email: str, password: str) -> AsyncIterator[Any]:
    """A browser-like client logged in through the console's form (cookies kept)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60, headers=HTML) as browser:
        r = await browser.post("/console/login", data={"email": email, "password": password})
        assert r.status_code == 303, r.text
        yield browser


def csrf_of(page: str) -> str:
    found = re.search(r'"X-CSRF-Token": "([0-9a-f]+)"', page)
    assert found, "the page carries no CSRF token"
    return found.group(1)


@pytest.fixture(scope="module")
async def world(server, client, admin) -> dict[str, Any]:
    own, other = await onboard(client, admin), await onboard(client, admin)
    marker = f"LEAK{secrets.token_hex(5)}"
    for t, prefix in ((own, "OWN"), (other, marker)):
        rows = [invoice(f"{prefix}-1", debtor=f"{prefix}-D", description=prefix)]
        r = await client.post(t.path("/invoices/batch"), json={"invoices": rows}, headers=t.key)
        assert r.status_code == 200, r.text
        r = await client.post(
            t.path("/payments/batch"),
            json={"payments": [payment(f"{prefix}-P", 7, reference=prefix)]},
            headers=t.key,
        )
        assert r.status_code == 200, r.text
    invoices = {
        t.id: (await client.get(t.path("/invoices"), headers=t.key)).json()["items"][0]["id"]
        for t in (own, other)
    }
    staff_email = f"staff-{secrets.token_hex(4)}@agency.test"
    await create_agency_user(staff_email, PASSWORD, "agency_staff")
    admin_email = f"boss-{secrets.token_hex(4)}@agency.test"
    await create_agency_user(admin_email, PASSWORD, "agency_admin")
    own_admin = await login(client, own.admin_email, own.admin_password)
    made = await client.post(
        own.path("/users"),
        json={"email": f"m-{own.slug}@x.test", "role": "tenant_member"},
        headers=own_admin,
    )
    assert made.status_code == 201, made.text
    logins = {
        "agency_admin": (admin_email, PASSWORD),
        "agency_staff": (staff_email, PASSWORD),
        "tenant_admin": (own.admin_email, own.admin_password),
        "tenant_member": (f"m-{own.slug}@x.test", made.json()["password"]),
    }
    return {"own": own, "other": other, "marker": marker, "invoices": invoices, "logins": logins}


async def test_anonymous_browser_is_sent_to_log_in(server):
    async with httpx.AsyncClient(base_url=server.url, headers=HTML) as browser:
        r = await browser.get("/")
        assert r.status_code in (301, 302, 303, 307) and r.headers["location"] == "/console"
        r = await browser.get("/console/portfolio")
        assert r.status_code == 303 and r.headers["location"] == "/console/login"
        r = await browser.get("/console/login")
        assert r.status_code == 200 and 'name="password"' in r.text
    async with httpx.AsyncClient(base_url=server.url) as api_client:
        r = await api_client.get("/console/portfolio")  # not a browser: the API's 401 JSON
        assert r.status_code == 401 and r.json()["status"] == 401


async def test_wrong_password_is_refused_without_a_cookie(server, world):
    async with httpx.AsyncClient(base_url=server.url, headers=HTML) as browser:
        email = world["logins"]["tenant_admin"][0]
        r = await browser.post("/console/login", data={"email": email, "password": "nope"})
        assert r.status_code == 401 and "kravlab_session" not in r.headers.get("set-cookie", "")
        r = await browser.post("/console/login", data={"email": "x\x00@y", "password": "p"})
        assert r.status_code == 401


@pytest.mark.parametrize("role", ["agency_admin", "agency_staff", "tenant_admin", "tenant_member"])
async def test_each_role_lands_on_its_page(server, world, role):
    async with console_login(server.url, *world["logins"][role]) as browser:
        r = await browser.get("/console", follow_redirects=True)
        assert r.status_code == 200, r.text
        if role.startswith("agency"):
            assert str(r.url).endswith("/console/portfolio")
            assert world["own"].id in r.text and world["other"].id in r.text
        else:
            assert str(r.url).endswith(f"/console/tenants/{world['own'].id}")
            assert world["marker"] not in r.text


@pytest.mark.parametrize("role", ["tenant_admin", "tenant_member"])
async def test_a_tenant_user_never_sees_another_tenants_pages(server, world, role):
    own, other = world["own"], world["other"]
    mine, theirs = world["invoices"][own.id], world["invoices"][other.id]
    async with console_login(server.url, *world["logins"][role]) as browser:
        for url in (
            f"/console/tenants/{own.id}",
            f"/console/tenants/{own.id}/invoices",
            f"/console/tenants/{own.id}/invoices?status=open",
            f"/console/tenants/{own.id}/invoices/{mine}",
            f"/console/tenants/{own.id}/policies",
        ):
            r = await browser.get(url)
            assert r.status_code == 200, (url, r.text[:300])
            assert world["marker"] not in r.text and other.id not in r.text, url
        for url in (
            f"/console/tenants/{other.id}",
            f"/console/tenants/{other.id}/invoices",
            f"/console/tenants/{other.id}/invoices/{theirs}",
            f"/console/tenants/{other.id}/policies",
            f"/console/tenants/{own.id}/invoices/{theirs}",  # their invoice under my tenant
        ):
            r = await browser.get(url)
            assert r.status_code == 404, (url, r.status_code)
            assert world["marker"] not in r.text
        for url in ("/console/portfolio", "/console/work"):
            r = await browser.get(url)
            assert r.status_code == 403, url
            assert world["marker"] not in r.text
        # Actions on the other tenant's invoice: missing, and nothing changes there.
        page = (await browser.get(f"/console/tenants/{own.id}")).text
        r = await browser.post(
            f"/console/tenants/{other.id}/invoices/{theirs}/state",
            data={"kind": "dispute", "reason": "x"},
            headers={"X-CSRF-Token": csrf_of(page), "HX-Request": "true"},
        )
        assert r.status_code == 404


async def test_actions_need_the_csrf_token_and_go_through_the_services(server, client, world):
    own = world["own"]
    invoice_id = world["invoices"][own.id]
    async with console_login(server.url, *world["logins"]["tenant_member"]) as browser:
        url = f"/console/tenants/{own.id}/invoices/{invoice_id}"
        page = (await browser.get(url)).text
        r = await browser.post(url + "/state", data={"kind": "dispute", "reason": "wrong price"})
        assert r.status_code == 403  # no CSRF header: refused before anything runs
        token = csrf_of(page)
        hx = {"X-CSRF-Token": token, "HX-Request": "true"}
        r = await browser.post(url + "/state", data={"kind": "dispute", "reason": ""}, headers=hx)
        assert r.status_code == 422 and r.headers.get("hx-retarget") == "#flash"
        r = await browser.post(url + "/state", data={"kind": "explode"}, headers=hx)
        assert r.status_code == 422
        r = await browser.post(
            url + "/state", data={"kind": "dispute", "reason": "wrong price"}, headers=hx
        )
        assert r.status_code == 200 and r.headers["hx-redirect"] == url
        # The API sees what the console did, with the audit trail the API would write.
        detail = (await client.get(own.path(f"/invoices/{invoice_id}"), headers=own.key)).json()
        assert detail["status"] == "disputed"
        assert detail["timeline"][-1]["reason"] == "wrong price"
        r = await browser.post(url + "/state", data={"kind": "dispute", "reason": "x"}, headers=hx)
        assert r.status_code == 409  # the service's own conflict
        r = await browser.post(url + "/state", data={"kind": "resolve"}, headers=hx)
        assert r.status_code == 200
        page = (await browser.get(url)).text
        assert "wrong price" in page
        r = await browser.post("/console/logout", headers=hx)
        assert r.status_code in (200, 201)
        assert (await browser.get(url)).status_code == 303


async def test_policy_checks_as_you_type_and_saves_a_draft(server, world):
    own = world["own"]
    async with console_login(server.url, *world["logins"]["tenant_member"]) as browser:
        page = (await browser.get(f"/console/tenants/{own.id}/policies")).text
        hx = {"X-CSRF-Token": csrf_of(page), "HX-Request": "true"}
        check = f"/console/tenants/{own.id}/policies/check"
        bad = '{"name": "X", "steps": [{"day": 5, "action": "reminder", "channel": "fax"}]}'
        r = await browser.post(check, data={"document": bad}, headers=hx)
        assert r.status_code == 200 and "policy.steps[0].channel" in r.text
        r = await browser.post(check, data={"document": "{not json"}, headers=hx)
        assert r.status_code == 200 and "not JSON" in r.text
        r = await browser.post(check, data={"document": "[" * 100_000}, headers=hx)
        assert r.status_code in (200, 422)
        good = (
            '{"name": "Konsole", "steps": [{"day": 5, "action": "reminder", "channel": "email"}]}'
        )
        r = await browser.post(check, data={"document": good}, headers=hx)
        assert r.status_code == 200 and 'class="good"' in r.text
        r = await browser.post(
            f"/console/tenants/{own.id}/policies/save", data={"document": good}, headers=hx
        )
        assert r.status_code == 200, r.text
        policy_url = r.headers["hx-redirect"]
        page = (await browser.get(policy_url)).text
        assert "Konsole" in page and 'data-version="1"' in page
        # A member may write drafts but not activate them (the API's permission).
        policy_id = policy_url.rsplit("/", 1)[1]
        r = await browser.post(
            f"/console/tenants/{own.id}/policies/{policy_id}/versions/1/activate", headers=hx
        )
        assert r.status_code == 403
    async with console_login(server.url, *world["logins"]["tenant_admin"]) as boss:
        page = (await boss.get(policy_url)).text
        assert "activate" in page
        hx = {"X-CSRF-Token": csrf_of(page), "HX-Request": "true"}
        r = await boss.post(
            f"/console/tenants/{own.id}/policies/{policy_id}/versions/1/activate", headers=hx
        )
        # The go-live gate: never simulated, so refused, with its reason in the flash area.
        assert r.status_code == 409, r.text
        assert r.headers.get("hx-retarget") == "#flash" and "simulat" in r.text
        assert "s-live" not in (await boss.get(policy_url)).text


async def test_language_switch(server, world):
    async with console_login(server.url, *world["logins"]["tenant_admin"]) as browser:
        url = f"/console/tenants/{world['own'].id}"
        assert "Utestående" in (await browser.get(url + "?lang=sv")).text
        assert "Outstanding" in (await browser.get(url + "?lang=en")).text
        assert "Outstanding" in (await browser.get(url)).text  # kept in a cookie
