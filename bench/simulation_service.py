"""The simulation service on PostgreSQL: import, extract, warm model, two-candidate simulation.

    .venv/bin/python bench/simulation_service.py [--invoices 200000] [--repeat 3]

A fresh database (`kravlab_simbench`, dropped and recreated), a synthetic history
(`simulator.worlds.generate`, due dates up to today) written as history files, then against a
real `kravlab serve` (jobs in-process, the embedded default's way):
- the import: `POST /imports` of the files to `done` (invoices per second);
- the model: `POST /model` to a fitted model with its rolling backtest (the warm-up);
- a simulation: `POST /simulations` of two candidates against the live policy to `done`,
  with the model warm (median of `--repeat`, each request different so none is reused);
and in this process, on the same database:
- the extract (`backend.extract.book_history`, median of 3, wall and CPU) against the
  baseline of PostgreSQL handing over the same columns alone (`COPY … TO STDOUT`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.worlds import generate, write  # noqa: E402

PG_ADMIN = os.environ.get("KRAVLAB_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
LIVE = {
    "name": "Today",
    "steps": [
        {"day": 5, "action": "reminder", "channel": "email"},
        {"day": 20, "action": "reminder", "channel": "letter", "fee": 6000},
        {
            "day": 35,
            "action": "collection_notice",
            "channel": "letter",
            "fee": 18000,
            "deadline_days": 10,
        },
    ],
}
FIRMER = {
    "name": "Firmer",
    "steps": [
        {"day": 2, "action": "reminder", "channel": "sms"},
        {"day": 12, "action": "reminder", "channel": "letter", "fee": 6000},
        {
            "day": 25,
            "action": "collection_notice",
            "channel": "letter",
            "fee": 18000,
            "deadline_days": 10,
        },
    ],
}
SOFTER = {"name": "Softer", "steps": [{"day": 10, "action": "reminder", "channel": "email"}]}


async def fresh_database(name: str) -> str:
    import asyncpg

    connection = await asyncpg.connect(PG_ADMIN)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


async def until(http: httpx.AsyncClient, path: str, headers: Any, done: Any) -> Any:
    while True:
        r = await http.get(path, headers=headers)
        if done(r):
            return r
        await asyncio.sleep(0.05)


async def extract_timings(tenant_id: str, repeat: int) -> tuple[list[float], list[float], int]:
    from backend import database
    from backend.extract import book_history
    from backend.settings import get_settings
    from tenants.access import ROLE_GRANTS, Principal
    from tenants.scope import TenantScope

    settings = get_settings()
    engine = database.bind(settings)
    await database.open_pool(engine, settings)
    system = Principal(
        "system", UUID(int=0), None, "agency_admin", grants=ROLE_GRANTS["agency_admin"]
    )
    scope = await TenantScope.open(UUID(tenant_id), system)
    walls, cpus, size = [], [], 0
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        history = await book_history(scope, date.today())
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        size = history.size
    await database.close_pool(engine)
    return walls, cpus, size


async def copy_baseline(dsn: str, tenant_id: str, repeat: int) -> list[float]:
    """PostgreSQL alone handing over the columns the extract reads, as text."""
    import asyncpg

    queries = [
        "SELECT id, external_id, debtor, issue_date, due_date, amount, e_invoice, state, "
        "fee_agreed, currency FROM invoices WHERE tenant = '{t}'",
        "SELECT id, external_id, type FROM debtors WHERE tenant = '{t}'",
        "SELECT invoice, paid_date, amount FROM payments WHERE tenant = '{t}'",
        "SELECT invoice, date, action, channel, fee FROM contacts WHERE tenant = '{t}'",
    ]
    connection = await asyncpg.connect(dsn)
    times = []
    try:
        for _ in range(repeat):
            started = time.perf_counter()
            for query in queries:
                with tempfile.TemporaryFile() as sink:
                    await connection.copy_from_query(query.format(t=tenant_id), output=sink)
            times.append(time.perf_counter() - started)
    finally:
        await connection.close()
    return times


async def bench(n: int, repeat: int) -> None:
    dsn = await fresh_database("kravlab_simbench")
    var = Path(tempfile.mkdtemp(prefix="kravlab-simbench-"))
    os.environ.update(DATABASE_URL=dsn, KRAVLAB_VAR_DIR=str(var), KRAVLAB_ENV="test")
    os.environ.pop("REDIS_URL", None)
    from backend.migrate import migrate
    from tenants.onboarding import create_agency_user
    from tests.support.server import LiveServer

    await migrate()
    history_dir = var / "history"
    write(generate("retail-b2c", n, 17, as_of=date.today()), history_dir)
    await create_agency_user("bench@kravlab.bench", "correct horse battery staple", "agency_admin")
    live = LiveServer().start()
    try:
        async with httpx.AsyncClient(base_url=live.url, timeout=600) as http:
            token = (
                await http.post(
                    "/api/v1/auth/login",
                    json={
                        "email": "bench@kravlab.bench",
                        "password": "correct horse battery staple",
                    },
                )
            ).json()["access_token"]
            admin = {"Authorization": f"Bearer {token}"}
            body = {
                "name": "Bench AB",
                "slug": "bench-ab",
                "country": "SE",
                "currency": "SEK",
                "admin_email": "admin@bench.test",
            }
            made = (await http.post("/api/v1/tenants", json=body, headers=admin)).json()
            tenant, key = made["id"], {"Authorization": f"Bearer {made['api_key']}"}
            base = f"/api/v1/tenants/{tenant}"

            files = {
                name: (name, (history_dir / name).read_bytes(), "text/csv")
                for name in ("invoices.csv", "payments.csv", "actions.csv")
            }
            started = time.perf_counter()
            r = await http.post(f"{base}/imports", files=files, headers=key)
            assert r.status_code == 202, r.text
            loaded = await until(
                http,
                f"{base}/imports/{r.json()['id']}",
                key,
                lambda r: r.json()["status"] in ("done", "failed"),
            )
            import_s = time.perf_counter() - started
            assert loaded.json()["status"] == "done", loaded.text

            policy = (
                await http.post(f"{base}/policies", json={"policy": LIVE}, headers=admin)
            ).json()
            activated = await http.post(
                f"{base}/policies/{policy['id']}/versions/1/activate",
                json={"override_reason": "benchmark"},
                headers=admin,
            )
            assert activated.status_code == 200, activated.text

            started = time.perf_counter()
            await http.post(f"{base}/model", headers=admin)
            await until(http, f"{base}/model", admin, lambda r: r.status_code == 200)
            fit_s = time.perf_counter() - started

            simulate = []
            for i in range(repeat):
                request = {
                    "candidates": {"firmer": FIRMER, "softer": SOFTER},
                    "horizon_days": 180 - i,  # a different request each time: none is reused
                }
                started = time.perf_counter()
                r = await http.post(f"{base}/simulations", json=request, headers=admin)
                assert r.status_code == 202 and not r.json()["reused"], r.text
                done = await until(
                    http,
                    f"{base}/simulations/{r.json()['id']}",
                    admin,
                    lambda r: r.json()["status"] in ("done", "failed"),
                )
                simulate.append(time.perf_counter() - started)
                assert done.json()["status"] == "done", done.json()["error"]
    finally:
        live.stop()

    walls, cpus, size = await extract_timings(tenant, 3)
    copies = await copy_baseline(dsn, tenant, 3)
    print(f"history: {n:,} invoices (retail-b2c, seed 17), PostgreSQL, jobs in-process")
    print(f"import (upload to done): {import_s:.1f} s = {n / import_s:,.0f} invoices/s")
    print(f"model fit with class selection and a 2-split backtest (warm-up): {fit_s:.1f} s")
    print(
        f"simulation, 2 candidates vs live, warm model: median {statistics.median(simulate):.2f} s "
        f"(runs: {', '.join(f'{s:.2f}' for s in simulate)})"
    )
    print(
        f"extract of {size:,} invoices: median {statistics.median(walls):.2f} s wall, "
        f"{statistics.median(cpus):.2f} s CPU; baseline COPY of the same columns "
        f"{statistics.median(copies):.2f} s ({statistics.median(walls) / statistics.median(copies):.1f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(bench(args.invoices, args.repeat))


if __name__ == "__main__":
    main()
