"""The reference-rate table over HTTP and in the database: seeded, read, added once, audited."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

from backend import reference_rates
from backend.interest import (
    SEEDED_RATES,
    InterestTerms,
    half_year_start,
    late_interest,
    next_half_year,
)
from backend.tables import ReferenceRate
from simulator.rules import REFERENCE_RATE_BP
from tests.support.world import agency_user, login, tenant_user

URL = "/api/v1/reference-rates"


async def _free_half_year(client, headers) -> date:
    """A half-year between 2002 and 2021 no test has filled yet (the table is shared)."""
    taken = {
        item["valid_from"] for item in (await client.get(URL, headers=headers)).json()["items"]
    }
    day = reference_rates.FIRST_HALF_YEAR
    while day.isoformat() in taken:
        day = next_half_year(day)
    assert day < date(2022, 1, 1), "no free half-year left before the seeded rows"
    return day


async def test_the_migration_seeds_the_rules_rows_and_every_credential_reads_them(
    client, admin, tenant
):
    member = await tenant_user(
        client,
        tenant,
        await login(client, tenant.admin_email, tenant.admin_password),
        "tenant_member",
    )
    for headers in (admin, tenant.key, member):
        r = await client.get(URL, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        rows = {item["valid_from"]: item["rate_bp"] for item in body["items"]}
        assert dict(REFERENCE_RATE_BP).items() <= rows.items()
        assert [i["valid_from"] for i in body["items"]] == sorted(rows)  # oldest first
        current = half_year_start(date.today())
        assert body["current_half_year"] == current.isoformat()
        assert body["current_missing"] is (current.isoformat() not in rows)
    assert (await client.get(URL)).status_code == 401


async def test_the_loaded_table_gives_the_same_interest_as_the_rules_rows(migrated):
    table = await reference_rates.load()
    terms = InterestTerms()
    start, end = date(2022, 1, 1), date(2026, 7, 1)
    assert late_interest(987_654, start, end, terms, table) == late_interest(
        987_654, start, end, terms, SEEDED_RATES
    )


async def test_an_agency_admin_adds_a_half_year_once_with_an_audit_entry(client, admin):
    day = await _free_half_year(client, admin)
    before = await ReferenceRate.count()
    alert = await reference_rates.missing_rate_alert(day + timedelta(days=40))
    assert alert is not None and alert.half_year == day and str(day) in alert.message

    r = await client.post(URL, json={"valid_from": day.isoformat(), "rate_bp": 175}, headers=admin)
    assert r.status_code == 201, r.text
    assert r.json() == {"valid_from": day.isoformat(), "rate_bp": 175}
    assert await reference_rates.missing_rate_alert(day + timedelta(days=40)) is None
    assert (await reference_rates.load()).rate_bp(day + timedelta(days=100)) == 175
    items = (await client.get(URL, headers=admin)).json()["items"]
    assert {"valid_from": day.isoformat(), "rate_bp": 175} in items

    again = await client.post(
        URL, json={"valid_from": day.isoformat(), "rate_bp": 300}, headers=admin
    )
    assert again.status_code == 409 and again.json()["status"] == 409
    assert await ReferenceRate.count() == before + 1
    assert (await reference_rates.load()).rate_bp(day) == 175  # the first row stands

    entries = (await client.get("/api/v1/audit?limit=200", headers=admin)).json()["items"]
    added = [e for e in entries if e["action"] == "reference_rate.add"]
    assert any(e["detail"] == {"valid_from": day.isoformat(), "rate_bp": 175} for e in added)


async def test_two_admins_racing_for_one_half_year_get_one_row_and_one_409(client, admin):
    other = await agency_user(client)
    day = await _free_half_year(client, admin)
    body = {"valid_from": day.isoformat(), "rate_bp": 50}
    answers = await asyncio.gather(
        *(client.post(URL, json=body, headers=h) for h in (admin, other, admin, other))
    )
    assert sorted(r.status_code for r in answers) == [201, 409, 409, 409], [r.text for r in answers]
    assert await ReferenceRate.count().where(ReferenceRate.valid_from == day) == 1


async def test_bad_rows_are_refused_with_their_fields_and_change_nothing(client, admin):
    before = await ReferenceRate.count()
    today = date.today()
    too_late = next_half_year(next_half_year(half_year_start(today)))
    cases = [
        ({"valid_from": "2015-02-01", "rate_bp": 100}, {"valid_from"}),
        ({"valid_from": "2015-07-02", "rate_bp": 100}, {"valid_from"}),
        ({"valid_from": "2002-01-01", "rate_bp": 100}, {"valid_from"}),  # before the rate existed
        ({"valid_from": too_late.isoformat(), "rate_bp": 100}, {"valid_from"}),
        ({"valid_from": "2015-01-01", "rate_bp": 2_501}, {"rate_bp"}),
        ({"valid_from": "2015-01-01", "rate_bp": -501}, {"rate_bp"}),
        ({"valid_from": "2015-01-01", "rate_bp": "100"}, {"rate_bp"}),
        ({"valid_from": "2015-01-01", "rate_bp": 1.5}, {"rate_bp"}),
        ({"valid_from": "1 jan 2015", "rate_bp": 100}, {"valid_from"}),
        ({"valid_from": "2015-01-01"}, {"rate_bp"}),
        ({"valid_from": "2015-01-01", "rate_bp": 100, "note": "x"}, {"note"}),
    ]
    for body, paths in cases:
        r = await client.post(URL, json=body, headers=admin)
        assert r.status_code == 422, (body, r.text)
        assert {e["path"] for e in r.json()["errors"]} == paths, (body, r.text)
    r = await client.post(URL, content=b"{not json", headers=admin)
    assert r.status_code == 400
    assert await ReferenceRate.count() == before


async def test_only_the_agency_admin_adds_rows(client, admin, tenant):
    tenant_admin = await login(client, tenant.admin_email, tenant.admin_password)
    staff = await agency_user(client, "agency_staff")
    body = {"valid_from": "2010-01-01", "rate_bp": 25}
    before = await ReferenceRate.count()
    for headers in (tenant.key, tenant_admin, staff):
        r = await client.post(URL, json=body, headers=headers)
        assert r.status_code == 403, r.text
    assert await ReferenceRate.count() == before


async def test_the_next_half_year_may_be_added_ahead_but_not_the_one_after(migrated):
    today = date(2026, 12, 28)
    assert reference_rates.check(date(2027, 1, 1), 200, today) == []
    assert [e.path for e in reference_rates.check(date(2027, 7, 1), 200, today)] == ["valid_from"]
    assert [e.path for e in reference_rates.check(date(2026, 12, 1), 200, today)] == ["valid_from"]
