"""The console in a real headless Chromium (Debian's, driven by Playwright), offline.

Every request that is not to the live server is refused and recorded, so htmx, uPlot and
the stylesheet must come from the app itself. Each role logs in through the form; the
portfolio's cells equal the JSON of GET /api/v1/portfolio; a tenant user never sees another
tenant's data on any page; a client checks a policy as they type, saves a draft and
disputes an invoice; staff take a case and record a call. Screenshots of the main pages
(laptop and phone width) go to var/screenshots/ for review.
"""

from __future__ import annotations

import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from tenants.onboarding import create_agency_user
from tests.e2e.test_api_docs import browser  # noqa: F401  (the Chromium fixture)
from tests.support.world import PASSWORD, invoice, login, onboard, payment

SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


def _book(prefix: str) -> list[dict[str, Any]]:
    today = date.today()
    rows = []
    for n, (amount, past_due) in enumerate(
        [(120_000, -10), (45_000, 12), (80_000, 40), (60_000, 70), (150_000, 130), (30_000, 5)]
    ):
        due = today - timedelta(days=past_due)
        rows.append(
            invoice(
                f"{prefix}-{n}",
                debtor=f"{prefix}-D{n}",
                amount=amount,
                issue=due - timedelta(days=30),
                due_in=30,
                description=prefix,
            )
        )
    return rows


async def _case_and_call(tenant_id: str, invoice_id: str) -> None:
    """A collection case and an open call task on the invoice (the engine's own tests make
    real ones; here they are the queue's contents)."""
    from backend import database
    from backend.settings import Settings
    from backend.tables import CollectionCase, DunningStep

    database.bind(Settings.from_env())  # this run's database (another test may have moved it)
    await CollectionCase.insert(
        CollectionCase(
            id=uuid.uuid4(),
            tenant=tenant_id,
            invoice=invoice_id,
            opened_on=date.today(),
            status="open",
            amount=150_000,
            opened_at=datetime.now(UTC),
        )
    )
    await DunningStep.insert(
        DunningStep(
            id=uuid.uuid4(),
            tenant=tenant_id,
            invoice=invoice_id,
            ordinal=0,
            run_date=date.today(),
            policy=uuid.uuid4(),
            version=1,
            step_index=0,
            day=60,
            action="reminder",
            channel="phone",
            status="task",
            created_at=datetime.now(UTC),
        )
    )


@pytest.fixture(scope="module")
async def world(server, client, admin) -> dict[str, Any]:
    own, other = await onboard(client, admin), await onboard(client, admin)
    marker = f"LEAK{secrets.token_hex(5)}"
    for t, prefix in ((own, "OWN"), (other, marker)):
        r = await client.post(
            t.path("/invoices/batch"), json={"invoices": _book(prefix)}, headers=t.key
        )
        assert r.status_code == 200, r.text
        r = await client.post(
            t.path("/payments/batch"),
            json={
                "payments": [
                    payment(f"{prefix}-P", 30_000, invoice_external_id=f"{prefix}-5"),
                    # Paid 10 days late, on an invoice due in an earlier month: a cohort
                    # whose recovery curve is neither empty nor complete.
                    payment(
                        f"{prefix}-LATE",
                        20_000,
                        invoice_external_id=f"{prefix}-3",
                        paid=date.today() - timedelta(days=60),
                    ),
                    payment(f"{prefix}-LOOSE", 999, reference=prefix),
                ]
            },
            headers=t.key,
        )
        assert r.status_code == 200, r.text
    ids = {}
    for t in (own, other):
        items = (await client.get(t.path("/invoices?limit=100"), headers=t.key)).json()["items"]
        ids[t.id] = {i["external_id"]: i["id"] for i in items}
    await _case_and_call(own.id, ids[own.id]["OWN-4"])
    logins = {}
    for role in ("agency_admin", "agency_staff"):
        email = f"{role}-{secrets.token_hex(4)}@agency.test"
        await create_agency_user(email, PASSWORD, role)
        logins[role] = (email, PASSWORD)
    own_admin = await login(client, own.admin_email, own.admin_password)
    member = f"member-{secrets.token_hex(4)}@{own.slug}.test"
    made = await client.post(
        own.path("/users"), json={"email": member, "role": "tenant_member"}, headers=own_admin
    )
    assert made.status_code == 201, made.text
    logins["tenant_admin"] = (own.admin_email, own.admin_password)
    logins["tenant_member"] = (member, made.json()["password"])
    SHOTS.mkdir(parents=True, exist_ok=True)
    return {"own": own, "other": other, "marker": marker, "ids": ids, "logins": logins}


class Session:
    """One logged-in browser context, offline but for the server."""

    def __init__(self, page: Any, outside: list[str], base: str) -> None:
        self.page, self.outside, self.base = page, outside, base

    async def goto(self, path: str) -> Any:
        return await self.page.goto(self.base + path, wait_until="networkidle")

    async def shot(self, name: str) -> None:
        await self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@contextlib.asynccontextmanager
async def _session(
    chromium: Any, base: str, email: str, password: str, viewport: dict[str, int] = LAPTOP
) -> AsyncIterator[Session]:
    context = await chromium.new_context(viewport=viewport, locale="sv-SE")
    page = await context.new_page()
    outside: list[str] = []

    async def only_local(route: Any) -> None:
        if urlparse(route.request.url).hostname == "127.0.0.1":
            await route.continue_()
        else:
            outside.append(route.request.url)
            await route.abort()

    await page.route("**/*", only_local)
    await page.goto(base + "/", wait_until="networkidle")
    assert page.url.endswith("/console/login"), page.url
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")
    await page.wait_for_load_state("networkidle")
    try:
        yield Session(page, outside, base)
        assert outside == [], outside
    finally:
        await context.close()


def session(chromium: Any, server: Any, world: dict[str, Any], role: str, **kw: Any) -> Any:
    """A logged-in page of `role`, as a context manager."""
    return _session(chromium, server.url, *world["logins"][role], **kw)


async def _cells(page: Any, tenant_id: str) -> dict[str, str]:
    return await page.eval_on_selector_all(
        f"tr[data-tenant='{tenant_id}'] [data-field]",
        "els => Object.fromEntries(els.map(e => [e.dataset.field, e.dataset.value]))",
    )


def _expected(row: dict[str, Any]) -> dict[str, str]:
    found = {
        "outstanding": str(row["outstanding"]),
        "open_cases": str(row["open_cases"]),
        "escalations_30d": str(row["escalations_30d"]),
        "fees_12m": str(row["fees_12m"]),
        "alerts": str(len(row["alerts"])),
        "model_mae_pp": str(row["model_mae_pp"]),
        "dso": "None" if row["dso"] is None else str(row["dso"]),
        "days_beyond_terms": "None"
        if row["days_beyond_terms"] is None
        else str(row["days_beyond_terms"]),
    }
    for bucket, value in row["ageing"].items():
        found[f"ageing.{bucket}"] = str(value)
    return found


async def _cohorts(page: Any, tenant_id: str) -> dict[str, Any]:
    """The recovery cohorts a client's row shows: month → amount and each reached day's
    paid and share (the cells' data), with the curve drawn for each cohort."""
    return await page.eval_on_selector_all(
        f"tr[data-tenant='{tenant_id}'] tr[data-cohort]",
        """rows => Object.fromEntries(rows.map(r => [r.dataset.cohort, {
            amount: r.dataset.amount,
            points: [...r.querySelectorAll('td[data-paid]')].map(
                c => [c.dataset.day, c.dataset.paid, c.dataset.share])}]))""",
    )


def _expected_cohorts(row: dict[str, Any]) -> dict[str, Any]:
    return {
        c["month"]: {
            "amount": str(c["amount"]),
            "points": [[str(p["day"]), str(p["paid"]), str(p["share"])] for p in c["points"]],
        }
        for c in row["recovery"]
    }


@pytest.mark.parametrize("role", ["agency_admin", "agency_staff"])
async def test_agency_portfolio_equals_the_api(browser, server, client, world, role):  # noqa: F811
    headers = await login(client, *world["logins"][role])
    api = (await client.get("/api/v1/portfolio", headers=headers)).json()
    async with session(browser, server, world, role) as s:
        assert s.page.url.endswith("/console/portfolio")
        await s.page.locator("#trend .chart canvas").first.wait_for(timeout=15_000)
        for row in api["clients"]:
            assert await _cells(s.page, row["tenant_id"]) == _expected(row), row["name"]
        for row in api["clients"]:
            assert await _cohorts(s.page, row["tenant_id"]) == _expected_cohorts(row)
        # The own client's curves: one line per cohort that has a reached day, one of them
        # showing the late payment; the triangle opens under the lines.
        own = next(r for r in api["clients"] if r["tenant_id"] == world["own"].id)
        assert any(p["share"] for c in own["recovery"] for p in c["points"])
        mine = s.page.locator(f"tr[data-tenant='{own['tenant_id']}']")
        drawn = sum(1 for c in own["recovery"] if c["points"])
        assert drawn > 0 and await mine.locator("svg.spark polyline").count() == drawn
        await mine.locator("details.cohorts summary").click()
        assert await mine.locator("details.cohorts tr[data-cohort]").first.is_visible()
        if api["reference_rate_missing_from"]:  # said in the page's language, not the API's
            banner = await s.page.inner_text("[data-field='reference_rate_missing']")
            assert banner.startswith("Referensräntan för halvåret från ")
            assert api["reference_rate_missing_from"] in banner
        for totals in api["totals"]:  # one row of figures per currency, never added across
            field = f"[data-field='totals.{totals['currency']}.outstanding']"
            assert await s.page.get_attribute(field, "data-value") == str(totals["outstanding"])
        await s.shot(f"portfolio-{role}")
        # Sorting and filtering through htmx: the table changes in place.
        await s.page.click("#portfolio-table th a:text-is('DSO (dagar)')")
        await s.page.wait_for_load_state("networkidle")
        await s.page.fill("input[name=q]", world["own"].slug)
        await s.page.wait_for_function(
            "document.querySelectorAll('#portfolio-table table.portfolio > tbody > tr').length === 1"
        )
        assert await s.page.locator(f"tr[data-tenant='{world['own'].id}']").count() == 1


async def test_staff_work_the_queue(browser, server, world):  # noqa: F811
    async with session(browser, server, world, "agency_staff") as s:
        await s.goto("/console/work")
        await s.shot("work-queue")
        row = s.page.locator("tr[id^=call-]").first
        await row.locator("select[name=outcome]").select_option("promise_to_pay")
        promised = (date.today() + timedelta(days=7)).isoformat()
        await row.locator("input[name=promised_date]").fill(promised)
        await row.locator("button[type=submit]").click()
        await s.page.locator("[data-outcome=promise_to_pay]").wait_for(timeout=10_000)
        await s.page.click("text=OWN-4 >> nth=-1")  # the case, opened from the queue
        await s.page.wait_for_load_state("networkidle")
        await s.page.click("#case button:text-is('Ta ärendet')")
        await s.page.locator("#case button:text-is('Släpp ärendet')").wait_for(timeout=10_000)
        await s.page.fill("#case textarea[name=text]", "Ringde, lovade betala nästa vecka")
        await s.page.click("#case button:text-is('Lägg till anteckning')")
        await s.page.locator("#case .notes >> text=lovade betala").wait_for(timeout=10_000)
        await s.shot("case")


@pytest.mark.parametrize("role", ["tenant_admin", "tenant_member"])
async def test_tenant_user_sees_only_their_book(browser, server, world, role):  # noqa: F811
    own, other, marker = world["own"], world["other"], world["marker"]
    theirs = world["ids"][other.id][f"{marker}-4"]
    async with session(browser, server, world, role) as s:
        assert s.page.url.endswith(f"/console/tenants/{own.id}")
        await s.page.locator("#cash-chart canvas").first.wait_for(timeout=15_000)
        pages = [
            f"/console/tenants/{own.id}",
            f"/console/tenants/{own.id}/invoices",
            f"/console/tenants/{own.id}/invoices/{world['ids'][own.id]['OWN-4']}",
            f"/console/tenants/{own.id}/policies",
        ]
        for path in pages:
            await s.goto(path)
            content = await s.page.content()
            assert marker not in content and other.id not in content, path
        for path in (
            f"/console/tenants/{other.id}",
            f"/console/tenants/{other.id}/invoices/{theirs}",
            f"/console/tenants/{own.id}/invoices/{theirs}",
            "/console/portfolio",
        ):
            response = await s.goto(path)
            assert response.status in (403, 404), path
            assert marker not in await s.page.content(), path
        if role == "tenant_admin":
            await s.goto(f"/console/tenants/{own.id}")
            await s.page.locator("#cash-chart canvas").first.wait_for(timeout=15_000)
            await s.shot("dashboard")


async def test_client_disputes_an_invoice_and_edits_a_policy(browser, server, world):  # noqa: F811
    own = world["own"]
    async with session(browser, server, world, "tenant_member") as s:
        await s.goto(f"/console/tenants/{own.id}/invoices/{world['ids'][own.id]['OWN-2']}")
        await s.page.fill("#dispute-form input[name=reason]", "Fel pris")
        await s.page.click("#dispute-form button")
        await s.page.locator("[data-field=status]:text-is('Bestridd')").wait_for(timeout=10_000)
        await s.page.locator(".timeline >> text=Fel pris").wait_for()
        await s.shot("invoice")
        await s.goto(f"/console/tenants/{own.id}/policies")
        editor = s.page.locator("textarea[name=document]")
        await s.page.locator(".checks .good").wait_for(timeout=10_000)  # the starter passes
        text = await editor.input_value()
        await editor.fill(text.replace('"email"', '"fax"'))
        await s.page.locator(".checks .bad").wait_for(timeout=10_000)
        assert "channel" in await s.page.locator(".checks").inner_text()
        await s.shot("policy-editor-checks")
        await editor.fill(text.replace("Ny policy", "Konsument v2"))
        await s.page.locator(".checks .good").wait_for(timeout=10_000)
        await s.page.click("form.editor button[type=submit]")
        await s.page.wait_for_url("**/policies/*", timeout=10_000)
        assert "Konsument v2" in await s.page.content()
        await s.shot("policy")


WIDER = """() => [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1
                 && !e.closest('.table-wrap'))
    .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))"""


async def _fits(page: Any) -> None:
    """Nothing but the tables' own scrolling boxes is wider than the phone."""
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"] + 1, (page.url, width, await page.evaluate(WIDER))


async def test_phone_width(browser, server, world):  # noqa: F811
    own = world["own"]
    async with session(browser, server, world, "tenant_admin", viewport=PHONE) as s:
        await s.page.locator("#cash-chart canvas").first.wait_for(timeout=15_000)
        await _fits(s.page)
        await s.shot("dashboard-phone")
        for path in (
            f"/console/tenants/{own.id}/invoices",
            f"/console/tenants/{own.id}/invoices/{world['ids'][own.id]['OWN-1']}",
            f"/console/tenants/{own.id}/policies",
        ):
            await s.goto(path)
            await _fits(s.page)
        await s.shot("invoice-phone")
    async with session(browser, server, world, "agency_admin", viewport=PHONE) as s:
        await _fits(s.page)
        await s.shot("portfolio-phone")


async def test_english(browser, server, world):  # noqa: F811
    async with session(browser, server, world, "agency_admin") as s:
        await s.page.click("a.lang")
        await s.page.wait_for_load_state("networkidle")
        assert await s.page.locator("th >> text=Outstanding").count() >= 1
        await s.shot("portfolio-english")


@pytest.fixture(scope="module")
async def whatif(server, client, admin) -> dict[str, Any]:
    """A client with a year of synthetic history, a live policy (put live by the agency's
    audited override) and a tenant_admin login: enough book for the simulator to fit."""
    from simulator.worlds import generate
    from tests.integration.test_simulations import LIVE
    from tests.support.world import OVERRIDE, book_rows

    tenant = await onboard(client, admin)
    invoices, payments = book_rows(generate("retail-b2c", 2500, 5, as_of=date.today()))
    for path, key, rows in (
        ("/invoices/batch", "invoices", invoices),
        ("/payments/batch", "payments", payments),
    ):
        r = await client.post(tenant.path(path), json={key: rows}, headers=tenant.key)
        assert r.status_code == 200, r.text
    session = await login(client, tenant.admin_email, tenant.admin_password)
    made = await client.post(tenant.path("/policies"), json={"policy": LIVE}, headers=session)
    r = await client.post(
        tenant.path(f"/policies/{made.json()['id']}/versions/1/activate"),
        json=OVERRIDE,
        headers=admin,
    )
    assert r.status_code == 200, r.text
    return {
        "tenant": tenant,
        "policy_id": made.json()["id"],
        "logins": {"tenant_admin": (tenant.admin_email, tenant.admin_password)},
    }


async def test_what_if_then_go_live_through_the_gate(browser, server, whatif):  # noqa: F811
    tenant, policy_id = whatif["tenant"], whatif["policy_id"]
    async with session(browser, server, whatif, "tenant_admin") as s:
        await s.goto(f"/console/tenants/{tenant.id}/policies/{policy_id}")
        editor = s.page.locator("textarea[name=document]")
        text = await editor.input_value()
        firmer = text.replace('"day": 7', '"day": 3')
        assert firmer != text
        await editor.fill(firmer)
        await s.page.locator(".checks .good").wait_for(timeout=10_000)
        await s.page.click("form.editor button[type=submit]")
        await s.page.locator("tr[data-version='2']").wait_for(timeout=10_000)
        # Refused without a simulation: the gate's reason in the flash area, still a draft.
        await s.page.click("tr[data-version='2'] button.activate")
        await s.page.locator("#flash .error").wait_for(timeout=10_000)
        assert "simul" in (await s.page.locator("#flash").inner_text()).lower()
        assert await s.page.locator("tr[data-version='2'] .s-draft").count() == 1
        await s.shot("policy-refused")
        # Simulate the draft against the live policy; the page follows it until done.
        await s.page.click("tr[data-version='2'] button.simulate")
        await s.page.wait_for_url("**/simulations/*", timeout=20_000)
        await s.page.locator(
            "#simulation[data-status=done], #simulation[data-status=failed]"
        ).first.wait_for(timeout=300_000)
        status = await s.page.get_attribute("#simulation", "data-status")
        assert status == "done", await s.page.locator("#simulation").inner_text()
        await s.page.locator("#sim-chart canvas").first.wait_for(timeout=15_000)
        assert await s.page.locator("[data-delta='recovery.30']").count() == 1
        assert await s.page.locator("[data-delta='days_beyond_terms']").count() == 1
        assert await s.page.locator("#sim-model").count() == 1  # the model's accuracy
        await s.shot("simulation")
        await s.page.click("#simulation button.activate")
        await s.page.wait_for_url(f"**/policies/{policy_id}", timeout=20_000)
        await s.page.locator("tr[data-version='2'] .s-live").wait_for(timeout=10_000)
        await s.shot("policy-live")
