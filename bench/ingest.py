"""Ingest throughput: invoices/s through the HTTP API vs. a raw bulk load of the same rows.

    .venv/bin/python bench/ingest.py [--engine postgres|sqlite|both] [--invoices 200000]

For each engine: start `kravlab serve` on a fresh database, onboard a tenant, push the
invoices in batches of 10 000 as real JSON over HTTP (bodies encoded before the clock
starts), then load the same rows into a scratch table with the engine's fastest raw path
(asyncpg COPY on PostgreSQL, sqlite3 executemany in one transaction on SQLite). Prints
invoices/s for both and the ratio. Repeats `--rounds` times and reports medians.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import msgspec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.ingest import DEBTOR_COLUMNS, INVOICE_COLUMNS  # noqa: E402
from tests.support.server import LiveServer  # noqa: E402  (the same server harness the tests use)

PG_ADMIN = os.environ.get("KRAVLAB_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def make_rows(n: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    start = date(2025, 1, 1)
    rows = []
    for i in range(n):
        issue = start + timedelta(days=rng.randint(0, 500))
        debtor = rng.randint(0, n // 5)
        rows.append(
            {
                "external_id": f"INV-{i:07d}",
                "debtor": {
                    "external_id": f"C-{debtor:06d}",
                    "name": f"Kund {debtor} AB",
                    "type": "b2b" if debtor % 3 == 0 else "b2c",
                    "email": f"c{debtor}@example.se",
                },
                "issue_date": issue.isoformat(),
                "due_date": (issue + timedelta(days=30)).isoformat(),
                "amount": rng.randint(10_000, 5_000_000),
                "currency": "SEK",
                "reference": f"{100000000 + i}",
                "e_invoice": rng.random() < 0.4,
                "fee_agreed": rng.random() < 0.7,
            }
        )
    return rows


async def through_api(
    server_url: str, bodies: list[bytes], tenant_id: str, key: str, clients: int = 1
) -> float:
    """Push every body; `clients` connections take batches from one shared list."""
    headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
    pending = list(reversed(bodies))

    async def client() -> None:
        async with httpx.AsyncClient(base_url=server_url, timeout=600) as http:
            while pending:
                r = await http.post(
                    f"/api/v1/tenants/{tenant_id}/invoices/batch",
                    content=pending.pop(),
                    headers=headers,
                )
                r.raise_for_status()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - started


async def onboard(server_url: str) -> tuple[str, str]:
    from tenants.onboarding import create_agency_user

    email = f"bench-{secrets.token_hex(4)}@kravlab.bench"
    await create_agency_user(email, "bench password 123", "agency_admin")
    async with httpx.AsyncClient(base_url=server_url, timeout=60) as http:
        token = (
            await http.post(
                "/api/v1/auth/login", json={"email": email, "password": "bench password 123"}
            )
        ).json()
        slug = f"bench-{secrets.token_hex(4)}"
        r = await http.post(
            "/api/v1/tenants",
            headers={"Authorization": f"Bearer {token['access_token']}"},
            json={
                "name": slug,
                "slug": slug,
                "country": "SE",
                "currency": "SEK",
                "admin_email": f"{slug}@kravlab.bench",
            },
        )
        r.raise_for_status()
        return r.json()["id"], r.json()["api_key"]


def scratch_records(rows: list[dict]) -> list[tuple]:
    tenant = uuid.uuid4()
    now = datetime.now(UTC)
    return [
        (
            uuid.uuid4(),
            tenant,
            uuid.uuid4(),
            r["external_id"],
            date.fromisoformat(r["issue_date"]),
            date.fromisoformat(r["due_date"]),
            r["amount"],
            r["currency"],
            r["reference"],
            r["e_invoice"],
            r["fee_agreed"],
            None,
            "active",
            0,
            "0" * 32,
            now,
            now,
            "live",
        )
        for r in rows
    ]


SCRATCH_COLUMNS = INVOICE_COLUMNS  # the API writes these; the baselines load the same


async def raw_postgres(dsn: str, rows: list[dict]) -> tuple[float, float]:
    """(COPY into a bare scratch table, COPY into the real indexed tables under a scratch tenant)."""
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("DROP TABLE IF EXISTS bench_scratch")
        await connection.execute("CREATE TABLE bench_scratch (LIKE invoices INCLUDING DEFAULTS)")
        records = scratch_records(rows)  # built before the clock: the API's parsing is its own cost
        started = time.perf_counter()
        await connection.copy_records_to_table(
            "bench_scratch", records=records, columns=SCRATCH_COLUMNS
        )
        bare = time.perf_counter() - started
        await connection.execute("DROP TABLE bench_scratch")
        # The same rows into the real schema (all indexes and foreign keys), debtors first.
        tenant = records[0][1]
        await connection.execute(
            "INSERT INTO tenants (id, name, slug, country, currency, status, created_at) "
            "VALUES ($1, 'scratch', $2, 'SE', 'SEK', 'active', now())",
            tenant,
            f"scratch-{tenant.hex[:8]}",
        )
        debtors = {
            r[2]: (
                r[2],
                tenant,
                f"D-{i}",
                "Kund",
                "b2c",
                None,
                None,
                None,
                None,
                "0" * 32,
                r[15],
                r[16],
            )
            for i, r in enumerate(records)
        }
        started = time.perf_counter()
        async with connection.transaction():
            await connection.copy_records_to_table(
                "debtors",
                records=list(debtors.values()),
                columns=DEBTOR_COLUMNS,
            )
            await connection.copy_records_to_table(
                "invoices", records=records, columns=SCRATCH_COLUMNS
            )
        indexed = time.perf_counter() - started
        await connection.execute("DELETE FROM tenants WHERE id = $1", tenant)
        return bare, indexed
    finally:
        await connection.close()


def raw_sqlite(path: str, rows: list[dict]) -> float:
    import piccolo.engine.sqlite  # noqa: F401  (registers the adapters for UUID, date, datetime)

    connection = sqlite3.connect(path, isolation_level=None, timeout=60)
    try:
        connection.execute("DROP TABLE IF EXISTS bench_scratch")
        connection.execute(f"CREATE TABLE bench_scratch ({', '.join(SCRATCH_COLUMNS)})")
        records = scratch_records(rows)
        marks = ", ".join("?" * len(SCRATCH_COLUMNS))
        started = time.perf_counter()
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(f"INSERT INTO bench_scratch VALUES ({marks})", records)
        connection.execute("COMMIT")
        elapsed = time.perf_counter() - started
        connection.execute("DROP TABLE bench_scratch")
        return elapsed
    finally:
        connection.close()


async def fresh_postgres() -> str:
    import asyncpg

    name = "kravlab_bench"
    connection = await asyncpg.connect(PG_ADMIN)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def run_engine(
    engine: str, rows: list[dict], batch: int, rounds: int, workers: int, clients: int
) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"kravlab-bench-{engine}-"))
    database_url = (
        asyncio.run(fresh_postgres())
        if engine == "postgres"
        else f"sqlite:///{workdir / 'bench.sqlite3'}"
    )
    os.environ.update(
        {
            "DATABASE_URL": database_url,
            "KRAVLAB_VAR_DIR": str(workdir),
            "KRAVLAB_ENV": "test",
            "KRAVLAB_SECRET_KEY": secrets.token_urlsafe(48),
            "KRAVLAB_RATE_LIMIT_PER_MINUTE": "100000",
            "KRAVLAB_LOG_LEVEL": "warning",
        }
    )
    # Piccolo binds its engine at import from DATABASE_URL: a fresh interpreter per engine.
    from backend.migrate import migrate

    asyncio.run(migrate())
    server = LiveServer(workers=workers).start()
    try:
        bodies = [
            msgspec.json.encode({"invoices": rows[i : i + batch]})
            for i in range(0, len(rows), batch)
        ]
        api_times, raw_times, indexed_times = [], [], []
        for _ in range(rounds):
            tenant_id, key = asyncio.run(onboard(server.url))  # a fresh tenant: every round inserts
            api_times.append(asyncio.run(through_api(server.url, bodies, tenant_id, key, clients)))
            if engine == "postgres":
                bare, indexed = asyncio.run(raw_postgres(database_url, rows))
                raw_times.append(bare)
                indexed_times.append(indexed)
            else:
                raw_times.append(raw_sqlite(database_url.removeprefix("sqlite:///"), rows))
        # The same rows again: nothing changed, so the API only reads and compares hashes.
        unchanged = asyncio.run(through_api(server.url, bodies, tenant_id, key, clients))
    finally:
        server.stop()
    api, raw = statistics.median(api_times), statistics.median(raw_times)
    indexed = statistics.median(indexed_times) if indexed_times else None
    return {
        "engine": engine,
        "invoices": len(rows),
        "api_per_s": len(rows) / api,
        "raw_per_s": len(rows) / raw,
        "ratio": raw / api,
        "indexed_per_s": len(rows) / indexed if indexed else None,
        "indexed_ratio": indexed / api if indexed else None,
        "unchanged_per_s": len(rows) / unchanged,
        "rounds": rounds,
        "api_runs_s": [round(t, 2) for t in api_times],
        "raw_runs_s": [round(t, 3) for t in raw_times],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["postgres", "sqlite", "both"], default="both")
    parser.add_argument("--invoices", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=2, help="concurrent HTTP clients")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    rows = make_rows(args.invoices)
    engines = ["postgres", "sqlite"] if args.engine == "both" else [args.engine]
    if len(engines) > 1:  # one interpreter per engine (see run_engine)
        import subprocess

        for engine in engines:
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--engine",
                    engine,
                    "--invoices",
                    str(args.invoices),
                    "--batch",
                    str(args.batch),
                    "--rounds",
                    str(args.rounds),
                    "--workers",
                    str(args.workers),
                    "--clients",
                    str(args.clients),
                ],
                check=True,
            )
        return
    result = run_engine(engines[0], rows, args.batch, args.rounds, args.workers, args.clients)
    print(
        f"{result['engine']:>8}: {result['invoices']} invoices in batches of {args.batch}, "
        f"{args.workers} server workers, {args.clients} clients, median of {result['rounds']}\n"
        f"          API insert   {result['api_per_s']:>10,.0f} invoices/s   runs {result['api_runs_s']} s\n"
        f"          API unchanged{result['unchanged_per_s']:>10,.0f} invoices/s   (same rows re-sent)\n"
        f"          raw bulk     {result['raw_per_s']:>10,.0f} invoices/s   runs {result['raw_runs_s']} s\n"
        f"          API / raw    {result['ratio']:>10.2f}"
    )
    if result["indexed_per_s"]:
        print(
            f"          COPY into the real indexed tables {result['indexed_per_s']:>10,.0f} invoices/s\n"
            f"          API / indexed COPY                {result['indexed_ratio']:>10.2f}"
        )


if __name__ == "__main__":
    main()
