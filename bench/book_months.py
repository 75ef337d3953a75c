"""What the `book_months` triggers cost the writes they watch, on one engine.

    .venv/bin/python bench/book_months.py [--engine postgres|sqlite] [--invoices 100000]
        [--rounds 2]

A fresh database (PostgreSQL `kravlab_book_months_bench`, dropped and recreated, or a
temporary SQLite file), migrated like production. Each round onboards two tenants and
writes the same book into each through the product's bulk path (`TenantScope.upsert`, in
batches of 10 000, each batch its own write transaction, as ERP batches are): once with the
rollup's triggers, once with the triggers on `invoices` switched off for the measurement
(PostgreSQL `ALTER TABLE … DISABLE TRIGGER USER`; SQLite drops them and recreates them from
their saved SQL). Timed per tenant:
- `insert`: every invoice new (the statement-level trigger on PostgreSQL, row by row on
  SQLite);
- `correct`: the same invoices again with amount and due date changed (an ERP correcting
  every row: the row-level update trigger fires for each);
- `interest`: late interest written on every invoice (`update_many`, as the daily run
  does): no counted column, so no trigger fires.
Medians over the rounds, and the ratio with ÷ without. The rollup of the tenants written
with triggers is checked against the book at the end.
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
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PG_ADMIN = os.environ.get("KRAVLAB_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
BATCH = 10_000
TODAY = date.today()


async def fresh_postgres(name: str) -> str:
    import asyncpg

    connection = await asyncpg.connect(PG_ADMIN)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def book(tenant: uuid.UUID, debtors: list[uuid.UUID], n: int, shift: int) -> list[tuple[Any, ...]]:
    """`n` invoices over two years (the columns of `ingest.INVOICE_COLUMNS`); `shift`
    moves amounts and due dates (a correction of every row)."""
    now = datetime.now(UTC)
    rows = []
    for i in range(n):
        issue = TODAY - timedelta(days=(i * 7919) % 730)
        rows.append(
            (
                uuid.uuid4(),
                tenant,
                debtors[i % len(debtors)],
                f"INV-{i}",
                issue,
                issue + timedelta(days=30 + shift),
                1_000 + (i * 104_729) % 3_000_000 + shift,
                "SEK",
                None,
                False,
                True,
                None,
                "active",
                0,
                f"h{i}-{shift}",
                now,
                now,
                "live",
            )
        )
    return rows


async def switch_triggers(on: bool, saved: list[str]) -> None:
    from piccolo.querystring import QueryString

    from tenants.transactions import engine, is_sqlite

    db = engine()
    if not is_sqlite():
        await db.run_ddl(f"ALTER TABLE invoices {'ENABLE' if on else 'DISABLE'} TRIGGER USER")
        return
    if on:
        for sql in saved:
            await db.run_ddl(sql)
        return
    rows = await db.run_querystring(
        QueryString(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'invoices'"
        )
    )
    saved[:] = [row["sql"] for row in rows]
    for row in rows:
        await db.run_ddl(f"DROP TRIGGER {row['name']}")


async def write(scope: Any, debtors: list[uuid.UUID], n: int) -> dict[str, float]:
    from backend.ingest import INVOICE_COLUMNS, INVOICE_UPDATES
    from backend.tables import Invoice
    from tenants.transactions import write_transaction

    times = {}
    for name, shift in (("insert", 0), ("correct", 3)):
        rows = book(scope.tenant_id, debtors, n, shift)
        started = time.perf_counter()
        for at in range(0, n, BATCH):
            async with write_transaction():
                await scope.upsert(
                    Invoice,
                    INVOICE_COLUMNS,
                    rows[at : at + BATCH],
                    ("tenant", "external_id"),
                    INVOICE_UPDATES,
                )
        times[name] = time.perf_counter() - started
    ids = [r["id"] for r in await scope.select(Invoice, Invoice.id)]
    started = time.perf_counter()
    for at in range(0, len(ids), BATCH):
        async with write_transaction():
            await scope.update_many(
                Invoice,
                "id",
                ("interest_accrued", "interest_as_of"),
                [(123, TODAY, i) for i in ids[at : at + BATCH]],
            )
    times["interest"] = time.perf_counter() - started
    return times


async def run(invoices: int, rounds: int) -> None:
    from backend import database
    from backend.ingest import DEBTOR_COLUMNS
    from backend.migrate import migrate
    from backend.settings import Settings
    from backend.tables import Debtor
    from frontend_api import figures
    from tenants import onboarding
    from tenants.access import Principal
    from tenants.scope import TenantScope
    from tenants.transactions import is_sqlite, write_transaction

    settings = Settings.from_env()
    engine = database.bind(settings)
    await migrate()
    await database.open_pool(engine, settings)
    admin_id = await onboarding.create_agency_user(
        "bench@agency.test", secrets.token_urlsafe(16), "agency_admin"
    )
    admin = Principal.user(admin_id, None, "agency_admin", "bench@agency.test")
    results: dict[str, dict[str, list[float]]] = {"with": {}, "without": {}}
    saved: list[str] = []
    checked = []
    for number in range(rounds * 2):
        mode = "with" if number % 2 == 0 else "without"
        made = await onboarding.onboard(
            name=f"Bench {number}",
            slug=f"bench-{number}",
            country="SE",
            currency="SEK",
            admin_email=f"admin@bench-{number}.test",
            actor=admin,
        )
        scope = await TenantScope.open(made["id"], admin)
        debtors = [uuid.uuid4() for _ in range(max(1, invoices // 5))]
        now = datetime.now(UTC)
        async with write_transaction():
            await scope.upsert(
                Debtor,
                DEBTOR_COLUMNS,
                [
                    (d, None, f"C-{i}", f"Kund {i}", "b2c", None, None, None, None, "h", now, now)
                    for i, d in enumerate(debtors)
                ],
                ("tenant", "external_id"),
                (),
            )
        if mode == "without":
            await switch_triggers(False, saved)
        try:
            times = await write(scope, debtors, invoices)
        finally:
            if mode == "without":
                await switch_triggers(True, saved)
        for name, seconds in times.items():
            results[mode].setdefault(name, []).append(seconds)
        print(f"  {mode:7} triggers: " + ", ".join(f"{k} {v:.2f} s" for k, v in times.items()))
        if mode == "with":
            checked.append(scope)
    for scope in checked:
        far = TODAY + timedelta(days=70)
        assert await figures.monthly(scope, far, 36) == await figures.monthly_from_book(
            scope, far, 36
        ), "book_months differs from the book"
    await database.close_pool(engine)
    print(
        f"{'sqlite' if is_sqlite() else 'postgres'}: {invoices:,} invoices a tenant, {rounds} rounds"
    )
    for name in ("insert", "correct", "interest"):
        a = statistics.median(results["with"][name])
        b = statistics.median(results["without"][name])
        print(
            f"{name:9} with {a:7.2f} s ({invoices / a:9,.0f} /s)  without {b:7.2f} s "
            f"({invoices / b:9,.0f} /s)  with ÷ without {a / b:5.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--database", default="kravlab_book_months_bench")
    args = parser.parse_args()
    var = tempfile.mkdtemp(prefix="kravlab-bench-book-months-")
    if args.engine == "postgres":
        url = asyncio.run(fresh_postgres(args.database))
    else:
        url = f"sqlite:///{var}/bench.sqlite3"
    os.environ.update(
        {
            "DATABASE_URL": url,
            "KRAVLAB_VAR_DIR": var,
            "KRAVLAB_ENV": "test",
            "KRAVLAB_SECRET_KEY": secrets.token_urlsafe(48),
            "KRAVLAB_LOG_LEVEL": "warning",
        }
    )
    asyncio.run(run(args.invoices, args.rounds))


if __name__ == "__main__":
    main()
