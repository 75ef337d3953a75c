"""The console's endpoints: portfolio figures and a client's dashboard, from a known book.

The book is built through the API (ingest, payments, pause, dispute), so every figure here
is checked against sums worked out by hand from the rows that went in.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from tests.support.world import agency_user, invoice, login, onboard, payment, tenant_user

TODAY = date.today()

# (external id, amount, days past due on today: negative = not yet due)
BOOK = [
    ("A-NOTDUE", 100_000, -5),
    ("A-D10", 20_000, 10),
    ("A-D45", 30_000, 45),
    ("A-D75", 40_000, 75),
    ("A-D120", 50_000, 120),
    ("A-PAID", 70_000, 20),
]


def _row(external_id: str, amount: int, past_due: int) -> dict[str, Any]:
    due = TODAY - timedelta(days=past_due)
    return invoice(
        external_id,
        amount=amount,
        issue=due - timedelta(days=30),
        due_in=30,
        debtor="D-" + external_id,
    )


@pytest.fixture(scope="module")
async def book(client, admin):
    own, other = await onboard(client, admin), await onboard(client, admin)
    rows = [_row(*spec) for spec in BOOK]
    r = await client.post(own.path("/invoices/batch"), json={"invoices": rows}, headers=own.key)
    assert r.status_code == 200, r.text
    payments = [
        payment("P-FULL", 70_000, invoice_external_id="A-PAID"),
        payment("P-PART", 5_000, invoice_external_id="A-D45"),
        payment("P-LOOSE", 1_234, reference="nothing"),
    ]
    r = await client.post(own.path("/payments/batch"), json={"payments": payments}, headers=own.key)
    assert r.status_code == 200, r.text
    ids = {
        i["external_id"]: i["id"]
        for i in (await client.get(own.path("/invoices?limit=100"), headers=own.key)).json()[
            "items"
        ]
    }
    r = await client.post(
        own.path(f"/invoices/{ids['A-D10']}/pause"), json={"reason": "asked"}, headers=own.key
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        own.path(f"/invoices/{ids['A-D75']}/dispute"), json={"reason": "wrong"}, headers=own.key
    )
    assert r.status_code == 200, r.text
    # The other tenant has a book of its own, which must never show in the first's figures.
    r = await client.post(
        other.path("/invoices/batch"),
        json={"invoices": [_row("B-1", 999_999, 10)]},
        headers=other.key,
    )
    assert r.status_code == 200, r.text
    return {"own": own, "other": other, "ids": ids}


def _client(answer: dict[str, Any], tenant_id: str) -> dict[str, Any]:
    (row,) = [c for c in answer["clients"] if c["tenant_id"] == tenant_id]
    return row


async def test_portfolio_sums_the_book_by_bucket(client, admin, book):
    r = await client.get("/api/v1/portfolio", headers=admin)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert "DSO" in answer["dso_method"] or "outstanding" in answer["dso_method"]
    row = _client(answer, book["own"].id)
    assert row["ageing"] == {
        "not_due": 100_000,
        "d1_30": 20_000,
        "d31_60": 25_000,  # 30 000 less the 5 000 paid
        "d61_90": 40_000,
        "d90_plus": 50_000,
    }
    assert row["ageing_count"] == {
        "not_due": 1,
        "d1_30": 1,
        "d31_60": 1,
        "d61_90": 1,
        "d90_plus": 1,
    }
    assert row["outstanding"] == 235_000
    assert row["overdue"] == 135_000
    # Sales of the last 90 days: invoices issued in them (A-NOTDUE, A-D10, A-D45, A-PAID).
    sold = 100_000 + 20_000 + 30_000 + 70_000
    assert row["invoiced_90d"] == sold
    assert row["dso"] == round(235_000 / sold * 90, 1)
    assert row["best_possible_dso"] == round(100_000 / sold * 90, 1)
    assert row["days_beyond_terms"] == pytest.approx(
        row["dso"] - row["best_possible_dso"], abs=0.11
    )
    other = _client(answer, book["other"].id)
    assert other["outstanding"] == 999_999
    kinds = {a["kind"] for a in row["alerts"]}
    assert "no_live_policy" in kinds and "model_missing" in kinds
    # The totals are the clients' sums, one per currency.
    assert [t["currency"] for t in answer["totals"]] == sorted(
        {c["currency"] for c in answer["clients"]}
    )
    for totals in answer["totals"]:
        mine = [c for c in answer["clients"] if c["currency"] == totals["currency"]]
        assert totals["clients"] == len(mine)
        for name in ("outstanding", "overdue", "invoiced_90d", "open_invoices"):
            assert totals[name] == sum(c[name] for c in mine), name


async def test_kronor_and_euros_are_never_added_up(client, admin, book):
    """A euro client's book is summed with the other euro clients', apart from the kronor."""
    euro = await onboard(client, admin, currency="EUR")
    rows = [
        invoice("E-1", amount=4_000, issue=TODAY - timedelta(days=40), due_in=30, currency="EUR")
    ]
    r = await client.post(euro.path("/invoices/batch"), json={"invoices": rows}, headers=euro.key)
    assert r.status_code == 200, r.text
    pay = [payment("E-P", 1_500, invoice_external_id="E-1", currency="EUR")]
    r = await client.post(euro.path("/payments/batch"), json={"payments": pay}, headers=euro.key)
    assert r.status_code == 200, r.text
    answer = (await client.get("/api/v1/portfolio", headers=admin)).json()
    totals = {t["currency"]: t for t in answer["totals"]}
    euros = [c for c in answer["clients"] if c["currency"] == "EUR"]
    assert totals["EUR"]["outstanding"] == sum(c["outstanding"] for c in euros)
    assert _client(answer, euro.id)["outstanding"] == 2_500
    kronor = [c for c in answer["clients"] if c["currency"] == "SEK"]
    assert totals["SEK"]["outstanding"] == sum(c["outstanding"] for c in kronor)
    # The trend: one series per currency; a client's own has its currency only.
    trend = (await client.get("/api/v1/portfolio/trend?months=3", headers=admin)).json()
    by_currency = {s["currency"]: s["months"] for s in trend["series"]}
    assert {"SEK", "EUR"} <= set(by_currency)
    own = (
        await client.get(f"/api/v1/portfolio/trend?months=3&client={euro.id}", headers=admin)
    ).json()
    assert [s["currency"] for s in own["series"]] == ["EUR"]
    assert sum(m["cash_in"] for m in own["series"][0]["months"]) == 1_500
    assert sum(m["cash_in"] for m in by_currency["EUR"]) >= 1_500
    kronor_cash = (
        await client.get(f"/api/v1/portfolio/trend?months=3&client={book['own'].id}", headers=admin)
    ).json()["series"][0]["months"]
    # The agency's kronor series holds the own client's kronor and not the euro payment.
    for month, own_month in zip(by_currency["SEK"], kronor_cash, strict=True):
        assert month["cash_in"] >= own_month["cash_in"]


async def test_portfolio_sorts_and_filters(client, admin, book):
    r = await client.get("/api/v1/portfolio?sort=outstanding&order=asc", headers=admin)
    values = [c["outstanding"] for c in r.json()["clients"]]
    assert values == sorted(values)
    r = await client.get(f"/api/v1/portfolio?q={book['own'].slug}", headers=admin)
    assert [c["tenant_id"] for c in r.json()["clients"]] == [book["own"].id]
    r = await client.get("/api/v1/portfolio?sort=name", headers=admin)
    names = [c["name"].casefold() for c in r.json()["clients"]]
    assert names == sorted(names, reverse=True)


@pytest.mark.parametrize(
    "query",
    ["sort=amount", "order=up", "q=" + "x" * 101, "alerts=maybe", "q=%00", "sort="],
)
async def test_portfolio_refuses_bad_queries(client, admin, query):
    r = await client.get(f"/api/v1/portfolio?{query}", headers=admin)
    assert r.status_code in (400, 422), (query, r.status_code, r.text)


async def test_trend_counts_months(client, admin, book):
    r = await client.get(f"/api/v1/portfolio/trend?months=6&client={book['own'].id}", headers=admin)
    assert r.status_code == 200, r.text
    (series,) = r.json()["series"]
    assert series["currency"] == "SEK"
    months = series["months"]
    assert len(months) == 6
    assert months[-1]["month"] == TODAY.strftime("%Y-%m")
    assert sum(m["cash_in"] for m in months) == 70_000 + 5_000 + 1_234
    issued_since = date(int(months[0]["month"][:4]), int(months[0]["month"][5:]), 1)
    expected = sum(
        amount for _, amount, past in BOOK if TODAY - timedelta(days=past + 30) >= issued_since
    )
    assert sum(m["invoiced"] for m in months) == expected
    for bad in ("months=0", "months=37", "client=nope"):
        r = await client.get(f"/api/v1/portfolio/trend?{bad}", headers=admin)
        assert r.status_code in (400, 422), bad


async def test_dashboard_shows_the_clients_book_only(client, book):
    own = book["own"]
    r = await client.get(own.path("/dashboard"), headers=own.key)
    assert r.status_code == 200, r.text
    board = r.json()
    assert board["outstanding"] == 235_000
    assert board["held"]["counts"] == {"paused": 1, "disputed": 1}
    assert {i["external_id"] for i in board["held"]["items"]} == {"A-D10", "A-D75"}
    assert board["unmatched"]["count"] == 1 and board["unmatched"]["amount"] == 1_234
    assert board["cash_in"][-1]["cumulative"] == 70_000 + 5_000 + 1_234
    assert len(board["cash_in"]) == 90
    assert "999999" not in r.text and book["other"].id not in r.text
    # Another tenant's dashboard is missing for this tenant's key.
    r = await client.get(book["other"].path("/dashboard"), headers=own.key)
    assert r.status_code == 404


async def test_tenant_users_cannot_read_the_portfolio(client, admin, book):
    own = book["own"]
    own_admin = await login(client, own.admin_email, own.admin_password)
    member = await tenant_user(client, own, own_admin, "tenant_member")
    for headers in (own_admin, member, own.key):
        for url in ("/api/v1/portfolio", "/api/v1/portfolio/trend"):
            r = await client.get(url, headers=headers)
            assert r.status_code == 403, (url, r.text)
            assert "999999" not in r.text
    staff = await agency_user(client, "agency_staff")
    assert (await client.get("/api/v1/portfolio", headers=staff)).status_code == 200


async def test_the_serving_models_accuracy_and_its_alert(client, admin, book):
    """The newest done fit serves: its backtest error shows, and no skill is an alert."""
    import json
    import uuid
    from datetime import UTC, datetime

    from backend.tables import TenantModel

    own = book["own"]
    for fitted, mae, skill in (
        (datetime(2020, 1, 1, tzinfo=UTC), 9.9, 0.5),  # an old fit: no longer serving
        (datetime.now(UTC), 3.25, -0.2),
    ):
        await TenantModel.insert(
            TenantModel(
                id=uuid.uuid4(),
                tenant=own.id,
                status="done",
                summary=json.dumps({"backtest": {"mae_pp": mae, "skill": skill}}),
                created_at=fitted,
                fitted_at=fitted,
            )
        )
    row = _client((await client.get("/api/v1/portfolio", headers=admin)).json(), own.id)
    assert row["model_mae_pp"] == 3.25 and row["model_skill"] == -0.2
    kinds = {a["kind"] for a in row["alerts"]}
    assert "model_no_skill" in kinds and "model_missing" not in kinds
    other = _client((await client.get("/api/v1/portfolio", headers=admin)).json(), book["other"].id)
    assert other["model_mae_pp"] is None and "model_missing" in {a["kind"] for a in other["alerts"]}


def _month_back(back: int) -> date:
    """The first day of the month `back` months before this one."""
    index = TODAY.year * 12 + TODAY.month - 1 - back
    return date(index // 12, index % 12 + 1, 1)


async def test_recovery_curves_of_recent_cohorts(client, admin):
    """Per client, the last six due months: the share of each cohort's amount paid by day
    0, 30, 60 and 90 after due, only the days the whole cohort has passed."""
    own, other = await onboard(client, admin), await onboard(client, admin)
    old, last = _month_back(5), _month_back(1)

    def due_on(external_id: str, amount: int, due: date) -> dict[str, Any]:
        return invoice(
            external_id, amount=amount, issue=due - timedelta(days=30), due_in=30, debtor="D-C"
        )

    rows = [
        due_on("C5-EARLY", 100_000, old + timedelta(days=4)),
        due_on("C5-SPLIT", 50_000, old + timedelta(days=14)),
        due_on("C5-NEVER", 50_000, old + timedelta(days=20)),
        due_on("C1-HALF", 80_000, last + timedelta(days=9)),
    ]
    r = await client.post(own.path("/invoices/batch"), json={"invoices": rows}, headers=own.key)
    assert r.status_code == 200, r.text
    split_due = old + timedelta(days=14)
    payments = [
        payment("PE", 100_000, invoice_external_id="C5-EARLY", paid=old + timedelta(days=2)),
        payment("PS1", 20_000, invoice_external_id="C5-SPLIT", paid=split_due + timedelta(25)),
        payment("PS2", 30_000, invoice_external_id="C5-SPLIT", paid=split_due + timedelta(75)),
        payment("PH", 40_000, invoice_external_id="C1-HALF", paid=last + timedelta(days=12)),
        payment("PX", 9_999, reference="nobody", paid=last + timedelta(days=3)),
    ]
    r = await client.post(own.path("/payments/batch"), json={"payments": payments}, headers=own.key)
    assert r.status_code == 200, r.text
    # The other client's invoice due in the same month never shows in the first's cohort.
    r = await client.post(
        other.path("/invoices/batch"),
        json={"invoices": [due_on("B-C", 999_999, last + timedelta(days=9))]},
        headers=other.key,
    )
    assert r.status_code == 200, r.text

    answer = (await client.get("/api/v1/portfolio", headers=admin)).json()
    cohorts = _client(answer, own.id)["recovery"]
    assert [c["month"] for c in cohorts] == [f"{_month_back(b):%Y-%m}" for b in range(6, 0, -1)]
    by_month = {c["month"]: c for c in cohorts}
    five = by_month[f"{old:%Y-%m}"]
    assert five["amount"] == 200_000
    # Paid on or before due 100 000 (the early one), by day 30 also 20 000, by 90 30 000.
    assert five["points"] == [
        {"day": 0, "paid": 100_000, "share": 0.5},
        {"day": 30, "paid": 120_000, "share": 0.6},
        {"day": 60, "paid": 120_000, "share": 0.6},
        {"day": 90, "paid": 150_000, "share": 0.75},
    ]
    one = by_month[f"{last:%Y-%m}"]
    assert one["amount"] == 80_000
    month_end = _month_back(0) - timedelta(days=1)
    reached = [d for d in (0, 30, 60, 90) if month_end + timedelta(days=d) < TODAY]
    expected = {0: (0, 0.0), 30: (40_000, 0.5), 60: (40_000, 0.5), 90: (40_000, 0.5)}
    assert one["points"] == [
        {"day": d, "paid": expected[d][0], "share": expected[d][1]} for d in reached
    ]
    # Months with nothing due: amount 0, a share nobody can know.
    empty = by_month[f"{_month_back(3):%Y-%m}"]
    assert empty["amount"] == 0 and all(p["share"] is None for p in empty["points"])
    assert _client(answer, other.id)["recovery"][-1]["amount"] == 999_999
