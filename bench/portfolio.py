"""The console's figures on PostgreSQL: the agency portfolio and one client's dashboard.

    .venv/bin/python bench/portfolio.py [--tenants 50] [--invoices 10000000] [--repeat 5]

Builds a fresh database (`kravlab_console_bench`, dropped and recreated; `--keep` reuses it
when it already holds the book), migrated like production, with the tenants onboarded by
the service and their books generated in SQL (`generate_series`, one INSERT … SELECT per
tenant and table, never the ORM): 20 000 debtors per tenant, invoices issued over the last
two years (due 30 days later), about 93 % of the past-due ones paid, a few paused or
disputed; a payment row for every invoice settled in the last 180 days (the dashboard's
cash-in curve reads 90) and some unmatched ones; one reminder step for each unpaid overdue
invoice and for one paid invoice in ten; a collection case for each unpaid invoice more
than 60 days past due; a live policy per tenant. Then `VACUUM ANALYZE`.

The monthly rollup `book_months` fills the way the product fills it: on a fresh database
the migrations run first, so the triggers count every `INSERT … SELECT` of the build; a
book built before the rollup's migration (`--keep`) gets it from that migration's fill.

Times, warm (after one untimed run), median of `--repeat`, each beside its baselines from
the same run: `SELECT count(*)` of all invoices (a full scan) and of the unpaid ones:
- `portfolio`: every client's row with its recovery cohorts (GET /api/v1/portfolio);
- `trend`: twelve months of invoiced, cash in and fees for the whole portfolio, from
  `book_months` as built, again after every tenant's rows are folded (the daily job's
  `book_months.compact`), and summed from the book itself (`monthly_from_book`);
- `cohorts`: six due months' recovery curves of every client, from `book_months` and
  from the book (`recovery_from_book`); both pairs must be equal or the bench fails;
- `dashboard`: one client's (GET /api/v1/tenants/{id}/dashboard).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any
from uuid import uuid4

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PG_ADMIN = os.environ.get("KRAVLAB_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
TODAY = date.today()
DEBTORS = 20_000
HISTORY_DAYS = 730

POLICY = {
    "name": "Standard",
    "steps": [
        {"day": 5, "action": "reminder", "channel": "email"},
        {"day": 20, "action": "reminder", "channel": "letter", "fee": 6000},
    ],
    "escalate_after_days": 60,
}

# $1 tenant id, $2 first number, $3 last number, $4 today. Deterministic per row (hashes of
# the tenant and the number), so a rerun builds the same book.
INVOICES = """
INSERT INTO invoices (id, tenant, debtor, external_id, issue_date, due_date, amount, currency,
    reference, e_invoice, fee_agreed, description, state, paused_until, paid_amount,
    settled_date, fees_charged, interest_accrued, interest_as_of, content_hash, created_at,
    updated_at, origin)
SELECT gen_random_uuid(), $1::uuid, md5($1::uuid::text || ':' || (g % 20000))::uuid, 'INV-' || g,
    issue, issue + 30, amount, 'SEK', (100000000 + g)::text, false, true, NULL,
    CASE WHEN NOT paid AND r3 < 0.004 THEN 'paused'
         WHEN NOT paid AND r3 < 0.008 THEN 'disputed' ELSE 'active' END,
    NULL, CASE WHEN paid THEN amount ELSE 0 END,
    CASE WHEN paid THEN LEAST($4::date, issue + 30 + (r2 * 45)::int - 10) END,
    CASE WHEN issue + 50 < $4::date AND (NOT paid OR r2 > 0.7) THEN 6000 ELSE 0 END,
    0, NULL, md5(g::text), now(), now(), 'live'
FROM (
    SELECT g, $4::date - (r1 * 730)::int AS issue,
        (1000 + r2 * r2 * r2 * 3000000)::bigint AS amount, r2, r3,
        ($4::date - (r1 * 730)::int + 30 < $4::date - 5 AND r3 > 0.07)
        OR ($4::date - (r1 * 730)::int + 30 >= $4::date - 5 AND r3 > 0.85) AS paid
    FROM (
        SELECT g,
            ('x' || substr(md5($1::uuid::text || g::text), 1, 8))::bit(32)::bigint / 4294967296.0 AS r1,
            ('x' || substr(md5($1::uuid::text || g::text), 9, 8))::bit(32)::bigint / 4294967296.0 AS r2,
            ('x' || substr(md5($1::uuid::text || g::text), 17, 8))::bit(32)::bigint / 4294967296.0 AS r3
        FROM generate_series($2::int, $3::int) AS g
    ) AS drawn
) AS rows
"""

DEBTOR_ROWS = """
INSERT INTO debtors (id, tenant, external_id, name, type, email, phone, address, org_no,
    content_hash, created_at, updated_at)
SELECT md5($1::uuid::text || ':' || g)::uuid, $1::uuid, 'C-' || g, 'Kund ' || g,
    CASE WHEN g % 5 = 0 THEN 'b2b' ELSE 'b2c' END, 'c' || g || '@example.se', NULL, NULL, NULL,
    md5(g::text), now(), now()
FROM generate_series(0, $2::int - 1) AS g
"""

PAYMENTS = """
INSERT INTO payments (id, tenant, invoice, external_id, amount, currency, paid_date,
    invoice_external_id, reference, matched_by, matched_at, created_at)
SELECT gen_random_uuid(), tenant, id, 'PAY-' || external_id, amount, 'SEK', settled_date,
    external_id, reference, 'reference', now(), now()
FROM invoices WHERE tenant = $1 AND settled_date >= $2::date - 180
"""

UNMATCHED = """
INSERT INTO payments (id, tenant, invoice, external_id, amount, currency, paid_date,
    invoice_external_id, reference, matched_by, matched_at, created_at)
SELECT gen_random_uuid(), $1::uuid, NULL, 'LOOSE-' || g, 1000 + g * 37, 'SEK', $2::date - g % 60,
    NULL, 'unknown-' || g, NULL, NULL, now()
FROM generate_series(1, 200) AS g
"""

STEPS = """
INSERT INTO dunning_steps (id, tenant, invoice, ordinal, run_date, policy, version, step_index,
    day, action, channel, fee, fee_kind, status, attempts, created_at, sent_at)
SELECT gen_random_uuid(), tenant, id, 0, due_date + 5, $2::uuid, 1, 0, 5, 'reminder', 'email',
    fees_charged, CASE WHEN fees_charged > 0 THEN 'reminder_fee' END,
    CASE WHEN g_fail THEN 'failed' ELSE 'sent' END, 1, now(), now()
FROM (
    SELECT *, (hashtext(external_id) % 997) = 0 AS g_fail FROM invoices
    WHERE tenant = $1 AND due_date + 5 <= $3::date
      AND (settled_date IS NULL OR hashtext(external_id) % 10 = 0)
) AS due
"""

CASES = """
INSERT INTO collection_cases (id, tenant, invoice, opened_on, status, outcome, assignee, amount,
    opened_at, closed_at)
SELECT gen_random_uuid(), tenant, id, due_date + 60, 'open', NULL, NULL, amount - paid_amount,
    now(), NULL
FROM invoices WHERE tenant = $1 AND settled_date IS NULL AND due_date + 60 < $2::date
"""


def median_ms(runs: list[float]) -> float:
    return statistics.median(runs) * 1000


async def timed(work: Callable[[], Awaitable[Any]], repeat: int) -> tuple[list[float], Any]:
    result = await work()  # warm: plans cached, pages in shared buffers
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = await work()
        runs.append(time.perf_counter() - started)
    return runs, result


async def fresh_database(name: str, keep: bool) -> tuple[str, bool]:
    """The database's URL and whether it already holds a book (kept with --keep)."""
    import asyncpg

    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    connection = await asyncpg.connect(PG_ADMIN)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if keep and exists:
            probe = await asyncpg.connect(url)
            try:
                built = await probe.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM information_schema.tables "
                    "WHERE table_name = 'invoices') AND EXISTS (SELECT 1 FROM invoices)"
                )
            finally:
                await probe.close()
            if built:
                return url, True
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return url, False


async def build(dsn: str, tenants: int, invoices: int) -> None:
    import asyncpg

    from backend import policies
    from tenants import onboarding
    from tenants.access import Principal
    from tenants.scope import TenantScope

    admin_id = await onboarding.create_agency_user(
        "bench@agency.test", secrets.token_urlsafe(16), "agency_admin"
    )
    admin = Principal.user(admin_id, None, "agency_admin", "bench@agency.test")
    per_tenant = invoices // tenants
    connection = await asyncpg.connect(dsn)
    started = time.perf_counter()
    try:
        for number in range(tenants):
            made = await onboarding.onboard(
                name=f"Klient {number:02d} AB",
                slug=f"klient-{number:02d}",
                country="SE",
                currency="SEK",
                admin_email=f"admin@klient-{number:02d}.test",
                actor=admin,
            )
            scope = await TenantScope.open(made["id"], admin)
            created = await policies.create(scope, POLICY)
            await policies.activate(scope, created["id"], 1)
            tenant = made["id"]
            await connection.execute(DEBTOR_ROWS, tenant, DEBTORS)
            await connection.execute(INVOICES, tenant, 1, per_tenant, TODAY)
            await connection.execute(PAYMENTS, tenant, TODAY)
            await connection.execute(UNMATCHED, tenant, TODAY)
            await connection.execute(STEPS, tenant, created["id"], TODAY)
            await connection.execute(CASES, tenant, TODAY)
            print(
                f"  tenant {number + 1}/{tenants}: {per_tenant:,} invoices "
                f"({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
        print("  VACUUM ANALYZE …", flush=True)
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()


async def bench(dsn: str, built: bool, tenants: int, invoices: int, repeat: int) -> None:
    import asyncpg

    from backend import book_months, database
    from backend.migrate import migrate
    from backend.settings import Settings
    from backend.tables import BookMonth
    from frontend_api import figures
    from frontend_api.dashboard import dashboard
    from frontend_api.portfolio import portfolio
    from tenants.access import Principal
    from tenants.scope import AgencyScope, TenantScope
    from tenants.tables import Tenant

    settings = Settings.from_env()
    engine = database.bind(settings)
    started = time.perf_counter()
    await migrate()
    print(f"migrations: {time.perf_counter() - started:.1f} s", flush=True)
    if not built:
        print(f"building {tenants} tenants, {invoices:,} invoices in SQL …", flush=True)
        await build(dsn, tenants, invoices)
    await database.open_pool(engine, settings)
    connection = await asyncpg.connect(dsn)
    try:
        counts = await connection.fetchrow(
            "SELECT (SELECT count(*) FROM invoices) AS invoices, "
            "(SELECT count(*) FROM invoices WHERE settled_date IS NULL) AS unpaid, "
            "(SELECT count(*) FROM payments) AS payments, "
            "(SELECT count(*) FROM dunning_steps) AS steps, "
            "(SELECT count(*) FROM collection_cases) AS cases, "
            "(SELECT count(*) FROM tenants) AS tenants"
        )
        print(
            "book: " + ", ".join(f"{name} {value:,}" for name, value in counts.items()),
            flush=True,
        )
        full_scan, _ = await timed(
            lambda: connection.fetchval("SELECT count(*) FROM invoices"), repeat
        )
        unpaid_scan, _ = await timed(
            lambda: connection.fetchval("SELECT count(*) FROM invoices WHERE settled_date IS NULL"),
            repeat,
        )
    finally:
        await connection.close()
    agency = AgencyScope(Principal.user(uuid4(), None, "agency_admin", "bench@agency.test"))
    first = await Tenant.select(Tenant.id).order_by(Tenant.slug).first()
    scope = await TenantScope.open(first["id"], agency.principal)
    portfolio_runs, answer = await timed(lambda: portfolio(agency, TODAY), repeat)
    trend_runs, trend = await timed(lambda: figures.monthly(agency, TODAY, 12), repeat)
    book_trend_runs, book_trend = await timed(
        lambda: figures.monthly_from_book(agency, TODAY, 12), repeat
    )
    cohort_runs, curves = await timed(lambda: figures.recovery(agency, TODAY), repeat)
    book_cohort_runs, book_curves = await timed(
        lambda: figures.recovery_from_book(agency, TODAY), repeat
    )
    dashboard_runs, board = await timed(lambda: dashboard(scope, TODAY), repeat)
    # The rollup's figures are the book's, at ten million invoices too.
    assert trend == book_trend, "the trend from book_months differs from the book's"
    assert curves == book_curves, "the cohorts from book_months differ from the book's"
    rows_before = await BookMonth.count()
    started = time.perf_counter()
    for tenant in await Tenant.select(Tenant.id):
        await book_months.compact(await TenantScope.open(tenant["id"], agency.principal))
    fold_s = time.perf_counter() - started
    rows_after = await BookMonth.count()
    folded_runs, _ = await timed(lambda: figures.monthly(agency, TODAY, 12), repeat)
    await database.close_pool(engine)
    for totals in answer["totals"]:
        print(
            f"portfolio: {totals['clients']} clients in {totals['currency']}, outstanding "
            f"{totals['outstanding']:,} minor units on {totals['open_invoices']:,} open invoices, "
            f"DSO {totals['dso']}"
        )
    print(f"dashboard: outstanding {board['outstanding']:,} öre, {board['open_invoices']:,} open")
    print(f"baseline  SELECT count(*) all invoices   {median_ms(full_scan):8.1f} ms")
    print(f"baseline  SELECT count(*) unpaid         {median_ms(unpaid_scan):8.1f} ms")
    print(
        f"book_months: {rows_before:,} rows as built, folded to {rows_after:,} in {fold_s:.1f} s "
        f"(every tenant's book_months.compact)"
    )
    for name, runs in (
        ("portfolio (50 clients)", portfolio_runs),
        ("trend (12 months, all)", trend_runs),
        ("  same, after the fold", folded_runs),
        ("  same, from the book", book_trend_runs),
        ("cohorts (6 months, all)", cohort_runs),
        ("  same, from the book", book_cohort_runs),
        ("dashboard (one client)", dashboard_runs),
    ):
        ms = median_ms(runs)
        print(
            f"{name:24} median {ms:8.1f} ms  runs {' / '.join(f'{r * 1000:.0f}' for r in runs)}"
            f"  -> goal < 1000 ms {'MET' if ms < 1000 else 'NOT MET'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--invoices", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database", default="kravlab_console_bench")
    parser.add_argument("--keep", action="store_true", help="reuse the database's book if built")
    args = parser.parse_args()
    dsn, built = asyncio.run(fresh_database(args.database, args.keep))
    os.environ.update(
        {
            "DATABASE_URL": dsn,
            "KRAVLAB_VAR_DIR": tempfile.mkdtemp(prefix="kravlab-bench-portfolio-"),
            "KRAVLAB_ENV": "test",
            "KRAVLAB_SECRET_KEY": secrets.token_urlsafe(48),
            "KRAVLAB_LOG_LEVEL": "warning",
        }
    )
    # Piccolo binds its engine at import from DATABASE_URL: import the backend only now.
    asyncio.run(bench(dsn, built, args.tenants, args.invoices, args.repeat))


if __name__ == "__main__":
    main()
