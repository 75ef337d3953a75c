"""`book_months` (kept by the database's triggers) gives exactly the figures the book does.

After every kind of write (an ERP batch, payments matched, unmatched and waiting for their
invoice, an invoice's amount and dates corrected, an imported history and the ERP push
that makes an imported invoice live, the dunning engine's fees and a contact that failed,
deletes, offboarding) the monthly trend and the recovery cohorts read from the rollup
equal the same figures summed from the invoices, payments and steps themselves, for one
client and for the whole agency. A hypothesis test writes random sequences of rows
straight through a scope. Both engines (KRAVLAB_TEST_DB).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend import book_months
from backend.tables import BookMonth, Debtor, DunningStep, Invoice, Payment
from frontend_api import figures
from tenants.access import Principal
from tenants.onboarding import offboard
from tenants.scope import AgencyScope, TenantScope
from tenants.transactions import write_transaction
from tests.integration.test_dunning import _setup, engine_server, mail  # noqa: F401
from tests.integration.test_imports import files, finished, upload
from tests.support.world import invoice, onboard, payment

TODAY = date.today()
STAFF = Principal.user(uuid4(), None, "agency_admin", "rollup@agency.test")
# Today, and a day after every row's month has closed: then no figure comes from the book.
DAYS = (TODAY, TODAY + timedelta(days=70))


async def _scope(tenant_id: str) -> TenantScope:
    return await TenantScope.open(UUID(tenant_id), STAFF)


async def agree(*scopes: Any) -> list[dict[str, Any]]:
    """Assert the rollup's figures equal the book's through each scope; the trend of the
    first, three years to the later day, for the caller to check it is not all zeros."""
    trend: list[dict[str, Any]] = []
    for scope in (*scopes, AgencyScope(STAFF)):
        for as_of in DAYS:
            rolled = await figures.monthly(scope, as_of, 36)
            assert rolled == await figures.monthly_from_book(scope, as_of, 36), as_of
            curves = await figures.recovery(scope, as_of, 30)
            assert curves == await figures.recovery_from_book(scope, as_of, 30), as_of
            if not trend:  # the first scope is one tenant's: one currency
                (trend,) = rolled.values()
    return trend


def _month(day: date) -> str:
    return f"{day:%Y-%m}"


async def test_ingest_payments_and_corrections(client, admin):
    tenant = await onboard(client, admin)
    scope = await _scope(tenant.id)
    rows = [
        invoice(
            f"I-{n}",
            debtor=f"D-{n % 3}",
            amount=10_000 + 1_000 * n,
            issue=TODAY - timedelta(days=30 * n + 5),
            due_in=30,
        )
        for n in range(14)
    ]
    # A payment that comes before its invoice waits unmatched, then is matched by the batch.
    early = [payment("P-EARLY", 4_000, invoice_external_id="I-LATER", paid=TODAY - timedelta(60))]
    r = await client.post(
        tenant.path("/payments/batch"), json={"payments": early}, headers=tenant.key
    )
    assert r.status_code == 200, r.text
    trend = await agree(scope)
    assert sum(m["cash_in"] for m in trend) == 4_000
    rows.append(invoice("I-LATER", amount=9_000, issue=TODAY - timedelta(days=100), due_in=30))
    r = await client.post(
        tenant.path("/invoices/batch"), json={"invoices": rows}, headers=tenant.key
    )
    assert r.status_code == 200, r.text
    paid = [
        payment("P-1", 11_000, invoice_external_id="I-1", paid=TODAY - timedelta(days=40)),
        payment("P-2a", 5_000, invoice_external_id="I-2", paid=TODAY - timedelta(days=70)),
        payment("P-2b", 7_000, invoice_external_id="I-2", paid=TODAY - timedelta(days=10)),
        payment("P-5", 15_000, invoice_external_id="I-5", paid=TODAY - timedelta(days=20)),
        payment("P-LOOSE", 777, reference="nobody", paid=TODAY - timedelta(days=3)),
    ]
    r = await client.post(
        tenant.path("/payments/batch"), json={"payments": paid}, headers=tenant.key
    )
    assert r.status_code == 200, r.text
    trend = await agree(scope)
    assert sum(m["invoiced"] for m in trend) == sum(i["amount"] for i in rows)
    assert sum(m["cash_in"] for m in trend) == 4_000 + 11_000 + 12_000 + 15_000 + 777
    curves = await figures.recovery(scope, TODAY + timedelta(days=70), 30)
    assert any(p["paid"] for c in curves[tenant.id] for p in c["points"])

    # Corrections from the ERP: an amount, a due date (its payments change cohort and
    # days), an issue date moved into another month.
    fixed = [dict(r) for r in rows if r["external_id"] in ("I-1", "I-2", "I-3")]
    fixed[0]["amount"] = 99_000
    fixed[1]["due_date"] = (TODAY - timedelta(days=5)).isoformat()
    fixed[2]["issue_date"] = (TODAY - timedelta(days=200)).isoformat()
    r = await client.post(
        tenant.path("/invoices/batch"), json={"invoices": fixed}, headers=tenant.key
    )
    assert r.status_code == 200, r.text
    assert r.json()["updated"] == 3, r.text
    trend = await agree(scope)
    assert sum(m["invoiced"] for m in trend) == sum(i["amount"] for i in rows) + 99_000 - 11_000


async def test_imports_and_an_imported_invoice_made_live(client, admin):
    tenant = await onboard(client, admin)
    scope = await _scope(tenant.id)
    r = await upload(client, tenant, files())
    assert r.status_code == 202, r.text
    assert (await finished(client, tenant, r.json()["id"]))["status"] == "done"
    await agree(scope)
    # Imported history is the simulator's: not invoiced, not in a cohort; its payments
    # are cash in (as the book's own query counts them).
    curves = await figures.recovery(scope, date(2025, 9, 1), 8)
    assert all(c["amount"] == 0 for c in curves.get(tenant.id, []))
    # The ERP pushes A-1 as a live invoice of the book: it counts from now on.
    pushed = invoice("A-1", debtor="C-1", amount=125_000, issue=date(2025, 1, 2), due_in=30)
    r = await client.post(
        tenant.path("/invoices/batch"), json={"invoices": [pushed]}, headers=tenant.key
    )
    assert r.status_code == 200, r.text
    await agree(scope)
    curves = await figures.recovery(scope, date(2025, 9, 1), 8)
    (cohort,) = [c for c in curves[tenant.id] if c["month"] == "2025-02"]
    assert cohort["amount"] == 125_000
    # Paid 1 000.00 and 250.00 on 2025-02-12 and -20, 11 and 19 days after due on 02-01.
    assert [p["paid"] for p in cohort["points"]] == [0, 125_000, 125_000, 125_000]


async def test_dunning_fees_and_a_failed_contact(engine_server, admin):  # noqa: F811
    async with httpx.AsyncClient(base_url=engine_server.url, timeout=120) as http:
        tenant, session, _ = await _setup(http, admin)
        bare, bare_session, _ = await _setup(
            http,
            admin,
            profile=False,
            rows=[invoice("NOPROFILE", debtor="D-N", issue=TODAY - timedelta(45), fee_agreed=True)],
        )
        for t, headers in ((tenant, session), (bare, bare_session)):
            for back in (3, 2, 1):
                on = (TODAY - timedelta(days=back)).isoformat()
                r = await http.post(t.path("/dunning/run"), json={"date": on}, headers=headers)
                assert r.status_code == 200, r.text
        await _letters_settled(tenant.id, bare.id)
        scopes = [await _scope(tenant.id), await _scope(bare.id)]
        trend = await agree(*scopes)
        assert sum(m["fees"] for m in trend) > 0
        # The tenant without a profile: its letter failed, and so counts as no income.
        assert await scopes[1].count(DunningStep).where(DunningStep.status == "failed")


async def _letters_settled(*tenant_ids: str) -> None:
    """Wait until the letters job has sent or failed every letter it was given."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        waiting = 0
        for tenant_id in tenant_ids:
            scope = await _scope(tenant_id)
            waiting += await scope.count(DunningStep).where(
                DunningStep.status.is_in(["pending", "sending"])
            )
        if not waiting:
            return
        await asyncio.sleep(0.1)


async def test_deletes_compaction_and_offboarding(client, admin):
    tenant = await onboard(client, admin)
    scope = await _scope(tenant.id)
    rows = [
        invoice(f"X-{n}", amount=20_000, issue=TODAY - timedelta(days=40 * n)) for n in range(5)
    ]
    r = await client.post(
        tenant.path("/invoices/batch"), json={"invoices": rows}, headers=tenant.key
    )
    assert r.status_code == 200, r.text
    pays = [payment(f"Y-{n}", 5_000, invoice_external_id=f"X-{n}") for n in range(5)]
    r = await client.post(
        tenant.path("/payments/batch"), json={"payments": pays}, headers=tenant.key
    )
    assert r.status_code == 200, r.text
    before = await agree(scope)
    async with write_transaction():
        # A payment taken back, an invoice deleted (its payments are left unmatched), a
        # debtor erased with its invoices.
        await scope.delete(Payment).where(Payment.external_id == "Y-0")
        await scope.delete(Invoice).where(Invoice.external_id == "X-1")
        debtor = await scope.select(Debtor, Debtor.id).where(Debtor.external_id == "D-1").first()
        assert debtor is not None
    after = await agree(scope)
    assert sum(m["cash_in"] for m in after) == sum(m["cash_in"] for m in before) - 5_000
    assert sum(m["invoiced"] for m in after) == sum(m["invoiced"] for m in before) - 20_000
    async with write_transaction():
        await scope.delete(Debtor).where(Debtor.external_id == "D-1")
    assert sum(m["invoiced"] for m in await agree(scope)) == 0

    # Folding the appended rows (PostgreSQL) changes no figure and leaves one row per key.
    figures_before = await figures.recovery(scope, DAYS[1], 30), await agree(scope)
    await book_months.compact(scope)
    assert (await figures.recovery(scope, DAYS[1], 30), await agree(scope)) == figures_before
    rows_now = await scope.select(BookMonth, BookMonth.month, BookMonth.measure)
    assert len(rows_now) == len({(r["month"], r["measure"]) for r in rows_now})

    # Offboarding erases the tenant's rows with it, the triggers adding none back.
    other = await onboard(client, admin)
    r = await client.post(other.path("/invoices/batch"), json={"invoices": rows}, headers=other.key)
    assert r.status_code == 200, r.text
    await offboard(UUID(other.id), STAFF)
    assert await BookMonth.count().where(BookMonth.tenant == other.id) == 0
    await agree(scope)


# ---------------------------------------------------------------------- random sequences

DAY = st.integers(min_value=-400, max_value=60).map(lambda n: TODAY + timedelta(days=n))
OPERATION = st.one_of(
    st.tuples(
        st.just("invoice"),
        DAY,
        st.integers(0, 120),
        st.integers(1, 10**7),
        st.sampled_from(["live", "live", "import"]),
    ),
    st.tuples(st.just("payment"), st.integers(0, 20), DAY, st.integers(1, 10**6)),
    st.tuples(
        st.just("step"),
        st.integers(0, 20),
        DAY,
        st.integers(0, 20_000),
        st.sampled_from(["pending", "sent", "failed", "skipped", "task"]),
    ),
    st.tuples(
        st.just("correct"), st.integers(0, 20), DAY, st.integers(0, 120), st.integers(1, 10**7)
    ),
    st.tuples(st.just("origin"), st.integers(0, 20), st.sampled_from(["live", "import"])),
    st.tuples(st.just("rematch"), st.integers(0, 20), st.integers(0, 20)),
    st.tuples(
        st.just("status"), st.integers(0, 20), st.sampled_from(["sent", "failed", "skipped"])
    ),
    st.tuples(st.just("delete_payment"), st.integers(0, 20)),
    st.tuples(st.just("delete_invoice"), st.integers(0, 20)),
)


@pytest.fixture(scope="module")
async def random_tenant(client, admin) -> TenantScope:
    tenant = await onboard(client, admin)
    r = await client.post(
        tenant.path("/invoices/batch"), json={"invoices": [invoice("SEED")]}, headers=tenant.key
    )
    assert r.status_code == 200, r.text
    return await _scope(tenant.id)


def _pick(items: list[Any], n: int) -> Any:
    return items[n % len(items)] if items else None


async def _apply(scope: TenantScope, operations: list[tuple[Any, ...]]) -> None:
    debtor = (await scope.select(Debtor, Debtor.id).first())["id"]
    now = datetime.now(UTC)
    for op in operations:
        invoices = [
            r["id"] for r in await scope.select(Invoice, Invoice.id).order_by(Invoice.external_id)
        ]
        payments = [
            r["id"] for r in await scope.select(Payment, Payment.id).order_by(Payment.external_id)
        ]
        steps = [
            r["id"]
            for r in await scope.select(DunningStep, DunningStep.id).order_by(DunningStep.id)
        ]
        async with write_transaction():
            kind = op[0]
            if kind == "invoice":
                _, issue, days, amount, origin = op
                await scope.insert(
                    Invoice,
                    {
                        "id": uuid4(),
                        "debtor": debtor,
                        "external_id": f"H-{uuid4().hex[:10]}",
                        "issue_date": issue,
                        "due_date": issue + timedelta(days=days),
                        "amount": amount,
                        "currency": "SEK",
                        "content_hash": "x",
                        "created_at": now,
                        "updated_at": now,
                        "origin": origin,
                    },
                )
            elif kind == "payment":
                _, n, paid, amount = op
                await scope.insert(
                    Payment,
                    {
                        "id": uuid4(),
                        "invoice": None if n == 0 else _pick(invoices, n),
                        "external_id": f"HP-{uuid4().hex[:10]}",
                        "amount": amount,
                        "currency": "SEK",
                        "paid_date": paid,
                        "created_at": now,
                    },
                )
            elif kind == "step" and invoices:
                _, n, run, fee, status = op
                await scope.insert(
                    DunningStep,
                    {
                        "id": uuid4(),
                        "invoice": _pick(invoices, n),
                        # never reused: len(steps) was, after a deleted invoice's steps
                        # went with it, and (invoice, ordinal) is unique
                        "ordinal": next(_ORDINALS),
                        "run_date": run,
                        "policy": uuid4(),
                        "version": 1,
                        "step_index": 0,
                        "day": 0,
                        "action": "reminder",
                        "channel": "email",
                        "fee": fee,
                        "status": status,
                        "created_at": now,
                    },
                )
            elif kind == "correct" and invoices:
                _, n, issue, days, amount = op
                await scope.update(
                    Invoice,
                    {
                        Invoice.issue_date: issue,
                        Invoice.due_date: issue + timedelta(days=days),
                        Invoice.amount: amount,
                    },
                ).where(Invoice.id == _pick(invoices, n))
            elif kind == "origin" and invoices:
                await scope.update(Invoice, {Invoice.origin: op[2]}).where(
                    Invoice.id == _pick(invoices, op[1])
                )
            elif kind == "rematch" and payments:
                target = None if op[2] == 0 else _pick(invoices, op[2])
                await scope.update(Payment, {Payment.invoice: target}).where(
                    Payment.id == _pick(payments, op[1])
                )
            elif kind == "status" and steps:
                await scope.update(DunningStep, {DunningStep.status: op[2]}).where(
                    DunningStep.id == _pick(steps, op[1])
                )
            elif kind == "delete_payment" and payments:
                await scope.delete(Payment).where(Payment.id == _pick(payments, op[1]))
            elif kind == "delete_invoice" and invoices:
                await scope.delete(Invoice).where(Invoice.id == _pick(invoices, op[1]))


_ORDINALS = itertools.count()


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=st.lists(OPERATION, min_size=1, max_size=12))
async def test_random_writes_keep_the_rollup_equal_to_the_book(random_tenant, operations):
    scope = random_tenant
    await _apply(scope, operations)
    for as_of in DAYS:
        assert await figures.monthly(scope, as_of, 36) == await figures.monthly_from_book(
            scope, as_of, 36
        )
        assert await figures.recovery(scope, as_of, 30) == await figures.recovery_from_book(
            scope, as_of, 30
        )
    if operations[-1][0] == "payment":
        await book_months.compact(scope)
        assert await figures.monthly(scope, DAYS[1], 36) == await figures.monthly_from_book(
            scope, DAYS[1], 36
        )


async def test_folding_while_batches_land(client, admin):
    """The fold runs while ERP batches of the same tenant append rows: no sum changes."""
    tenant = await onboard(client, admin)
    scope = await _scope(tenant.id)

    async def batch(n: int) -> None:
        rows = [
            invoice(f"F{n}-{i}", amount=1_000 + i, issue=TODAY - timedelta(days=9 * i + n))
            for i in range(40)
        ]
        pays = [
            payment(f"FP{n}-{i}", 500, invoice_external_id=f"F{n}-{i}", paid=TODAY - timedelta(i))
            for i in range(0, 40, 3)
        ]
        r = await client.post(
            tenant.path("/invoices/batch"), json={"invoices": rows}, headers=tenant.key
        )
        assert r.status_code == 200, r.text
        r = await client.post(
            tenant.path("/payments/batch"), json={"payments": pays}, headers=tenant.key
        )
        assert r.status_code == 200, r.text

    async def fold() -> None:
        for _ in range(6):
            await book_months.compact(scope)
            await asyncio.sleep(0.01)

    await asyncio.gather(*(batch(n) for n in range(4)), fold(), fold())
    trend = await agree(scope)
    assert sum(m["invoiced"] for m in trend) == 4 * sum(1_000 + i for i in range(40))
    assert sum(m["cash_in"] for m in trend) == 4 * 500 * len(range(0, 40, 3))
