"""History import rate: invoices/s through `POST /imports` vs. a raw COPY of the same rows.

    .venv/bin/python bench/imports.py [--invoices 200000] [--world retail-b2c]
                                      [--database kravlab_imports]

On PostgreSQL (the database named is dropped and recreated): generate a synthetic history
(`simulator.worlds.generate`/`write`, before any clock starts), start `kravlab serve`,
onboard a tenant, upload the three CSV files over HTTP and poll `GET /imports/{id}` until
it is done: the import's rate is invoices over the time from the upload's first byte to
`done` (upload, validation and the all-or-nothing write). The server's own stage times
come from the import row (queued, validated, finished). The baseline in the same run
loads the same rows (debtors, invoices, payments, contacts, built as tuples before its
clock) into the same indexed tables with asyncpg COPY in one transaction, under a scratch
tenant: what the write costs with no parsing, checking or staging at all.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend import imports  # noqa: E402
from backend.ingest import DEBTOR_COLUMNS, PAYMENT_COLUMNS  # noqa: E402
from simulator.history import ACTIONS, CHANNELS, NOT_SETTLED, day_date, load_history  # noqa: E402
from simulator.worlds import generate, write  # noqa: E402
from tests.support.server import LiveServer  # noqa: E402

PG_ADMIN = os.environ.get("KRAVLAB_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


async def fresh_postgres(name: str) -> str:
    import asyncpg

    connection = await asyncpg.connect(PG_ADMIN)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


async def onboard(server_url: str) -> tuple[str, str]:
    from tenants.onboarding import create_agency_user

    email = f"bench-{secrets.token_hex(4)}@kravlab.bench"
    await create_agency_user(email, "bench password 123", "agency_admin")
    async with httpx.AsyncClient(base_url=server_url, timeout=60) as http:
        login = await http.post(
            "/api/v1/auth/login", json={"email": email, "password": "bench password 123"}
        )
        slug = f"bench-{secrets.token_hex(4)}"
        r = await http.post(
            "/api/v1/tenants",
            headers={"Authorization": f"Bearer {login.json()['access_token']}"},
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


async def through_api(server_url: str, folder: Path, tenant_id: str, key: str) -> dict:
    headers = {"Authorization": f"Bearer {key}"}
    files = {
        name: (name, (folder / name).open("rb"), "text/csv")
        for name in imports.FILES
        if (folder / name).exists()
    }
    async with httpx.AsyncClient(base_url=server_url, timeout=3600) as http:
        started = time.perf_counter()
        r = await http.post(f"/api/v1/tenants/{tenant_id}/imports", files=files, headers=headers)
        uploaded = time.perf_counter() - started
        r.raise_for_status()
        import_id = r.json()["id"]
        seen_writing = None
        while True:
            state = (
                await http.get(f"/api/v1/tenants/{tenant_id}/imports/{import_id}", headers=headers)
            ).json()
            if state["stage"] == "writing" and seen_writing is None:
                seen_writing = time.perf_counter() - started
            if state["status"] in ("done", "failed"):
                break
            await asyncio.sleep(0.05)
        total = time.perf_counter() - started
    for _, handle, _ in files.values():
        handle.close()
    if state["status"] != "done":
        raise SystemExit(f"the import failed: {state['errors'][:5]}")
    return {
        "total_s": total,
        "upload_s": uploaded,
        "validated_at_s": seen_writing,
        "server_load_s": (
            datetime.fromisoformat(state["finished_at"])
            - datetime.fromisoformat(state["started_at"])
        ).total_seconds(),
        "state": state,
    }


def records(folder: Path, tenant: uuid.UUID) -> dict[str, list[tuple]]:
    """The rows the import writes, as tuples for COPY (built before the baseline's clock)."""
    h = load_history(folder)
    now = datetime.now(UTC)
    days = {
        int(d): day_date(int(d)) for d in np.unique(np.r_[h.issue, h.due, h.pay_day, h.act_day])
    }
    debtor_ids = [uuid.uuid4() for _ in range(len(h.debtor_ids))]
    debtors = [
        (debtor_ids[d], tenant, key, key, "b2c", None, None, None, None, "0" * 32, now, now)
        for d, key in enumerate(h.debtor_ids.tolist())
    ]
    invoice_ids = [uuid.uuid4() for _ in range(h.size)]
    paid = np.zeros(h.size, dtype=np.int64)
    np.add.at(paid, h.pay_invoice, h.pay_amount)
    invoices = [
        (
            invoice_ids[i],
            tenant,
            debtor_ids[d],
            external_id,
            days[issue],
            days[due],
            amount,
            h.currency,
            None,
            e_inv,
            fee,
            None,
            "disputed" if disputed else "active",
            p,
            "0" * 32,
            now,
            now,
            "import",
            None if settled == NOT_SETTLED else day_date(settled),
        )
        for i, (external_id, d, issue, due, amount, e_inv, fee, disputed, p, settled) in enumerate(
            zip(
                h.invoice_id.tolist(),
                h.debtor.tolist(),
                h.issue.tolist(),
                h.due.tolist(),
                h.amount.tolist(),
                h.e_invoice.tolist(),
                h.fee_agreed.tolist(),
                h.disputed.tolist(),
                paid.tolist(),
                h.settled.tolist(),
                strict=True,
            )
        )
    ]
    payments = [
        (
            uuid.uuid4(),
            tenant,
            invoice_ids[i],
            f"raw:{k}",
            amount,
            h.currency,
            days[day],
            None,
            None,
            "invoice_id",
            now,
            now,
        )
        for k, (i, day, amount) in enumerate(
            zip(h.pay_invoice.tolist(), h.pay_day.tolist(), h.pay_amount.tolist(), strict=True)
        )
    ]
    contacts = [
        (
            uuid.uuid4(),
            tenant,
            invoice_ids[i],
            days[day],
            ACTIONS[action],
            CHANNELS[channel] if channel >= 0 else None,
            fee,
            None,
        )
        for i, day, action, channel, fee in zip(
            h.act_invoice.tolist(),
            h.act_day.tolist(),
            h.act_action.tolist(),
            h.act_channel.tolist(),
            h.act_fee.tolist(),
            strict=True,
        )
    ]
    return {"debtors": debtors, "invoices": invoices, "payments": payments, "contacts": contacts}


async def raw_copy(dsn: str, folder: Path) -> float:
    """COPY of the same rows into the real, indexed tables under a scratch tenant."""
    import asyncpg

    tenant = uuid.uuid4()
    rows = records(folder, tenant)
    columns = {
        "debtors": DEBTOR_COLUMNS,
        "invoices": imports.INVOICE_COLUMNS,
        "payments": PAYMENT_COLUMNS,
        "contacts": imports.CONTACT_COLUMNS,
    }
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            "INSERT INTO tenants (id, name, slug, country, currency, status, created_at) "
            "VALUES ($1, 'scratch', $2, 'SE', 'SEK', 'active', now())",
            tenant,
            f"scratch-{tenant.hex[:8]}",
        )
        started = time.perf_counter()
        async with connection.transaction():
            for table in ("debtors", "invoices", "payments", "contacts"):
                await connection.copy_records_to_table(
                    table, records=rows[table], columns=list(columns[table])
                )
        elapsed = time.perf_counter() - started
        await connection.execute("DELETE FROM tenants WHERE id = $1", tenant)
        return elapsed
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=200_000)
    parser.add_argument("--world", default="retail-b2c")
    parser.add_argument("--database", default="kravlab_imports", help="dropped and recreated")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="kravlab-bench-imports-"))
    folder = workdir / "history"
    started = time.perf_counter()
    write(generate(args.world, args.invoices, seed=1), folder)
    sizes = {p.name: p.stat().st_size for p in folder.glob("*.csv")}
    print(
        f"generated {args.invoices} invoices of {args.world} in "
        f"{time.perf_counter() - started:.1f} s ({sum(sizes.values()) / 1e6:.0f} MB of CSV)"
    )
    database_url = asyncio.run(fresh_postgres(args.database))
    os.environ.update(
        {
            "DATABASE_URL": database_url,
            "KRAVLAB_VAR_DIR": str(workdir),
            "KRAVLAB_ENV": "test",
            "KRAVLAB_SECRET_KEY": secrets.token_urlsafe(48),
            "KRAVLAB_LOG_LEVEL": "warning",
        }
    )
    os.environ.pop("REDIS_URL", None)  # the load runs in the server's own process
    from backend.migrate import migrate

    asyncio.run(migrate())
    server = LiveServer(workers=1).start()
    try:
        tenant_id, key = asyncio.run(onboard(server.url))
        api = asyncio.run(through_api(server.url, folder, tenant_id, key))
    finally:
        server.stop()
    raw = asyncio.run(raw_copy(database_url, folder))
    state = api["state"]
    n = state["invoices"]
    rows = n + state["payments"] + state["contacts"]
    print(
        f"import over HTTP: {n} invoices, {state['payments']} payments, {state['contacts']} "
        f"contacts in {api['total_s']:.1f} s = {n / api['total_s']:,.0f} invoices/s "
        f"({rows / api['total_s']:,.0f} rows/s)"
    )
    print(
        f"  upload {api['upload_s']:.1f} s, validated by {api['validated_at_s'] or 0:.1f} s, "
        f"server-side load (validate + write) {api['server_load_s']:.1f} s"
    )
    print(
        f"raw COPY of the same rows: {raw:.1f} s = {n / raw:,.0f} invoices/s "
        f"({rows / raw:,.0f} rows/s); the import takes {api['total_s'] / raw:.1f}x as long"
    )
    print(
        f"at this rate 1 000 000 invoices import in {1_000_000 / (n / api['total_s']) / 60:.1f} min"
    )


if __name__ == "__main__":
    main()
