"""A server worker killed with SIGKILL in the middle of a batch: nothing half-written, and a
retry with the same Idempotency-Key, once the dead request's claim on it lapses, writes the
whole batch once."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from pathlib import Path
from uuid import uuid4

import asyncpg
import httpx
import pytest

from tests.support.db import book_counts
from tests.support.server import LiveServer
from tests.support.world import invoice

ROWS = 10_000
LOCK_SECONDS = 3  # KRAVLAB_IDEMPOTENCY_LOCK_SECONDS: a dead request's key is taken over after


def _workers(live: LiveServer) -> list[int]:
    """uvicorn's worker processes (children of the supervisor that run the app)."""
    assert live.process is not None
    pid = live.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [
        int(child)
        for child in children
        if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


async def _writing(database_url: str, application_name: str) -> bool:
    """Is a transaction of the server writing invoices right now?"""
    if database_url.startswith("postgresql"):
        connection = await asyncpg.connect(database_url)
        try:
            return bool(
                await connection.fetchval(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
                    " WHERE a.application_name = $1 AND l.relation = 'invoices'::regclass"
                    " AND l.mode = 'RowExclusiveLock'",
                    application_name,
                )
            )
        finally:
            await connection.close()
    # SQLite: the server's writes run in IMMEDIATE transactions; a probe that cannot take
    # the write lock at once is looking at one.
    probe = sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=0)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc)
        return True
    finally:
        probe.close()


async def test_sigkill_mid_batch_leaves_nothing_and_the_same_key_then_works(tenant, database_url):
    name = f"kravlab-kill-{uuid4().hex[:8]}"
    live = LiveServer(
        workers=2,
        KRAVLAB_DB_APPLICATION_NAME=name,
        KRAVLAB_IDEMPOTENCY_LOCK_SECONDS=str(LOCK_SECONDS),
    ).start()
    body = {"invoices": [invoice(f"K-{i}", debtor=f"D-{i % 300}") for i in range(ROWS)]}
    headers = {**tenant.key, "Idempotency-Key": f"kill-{uuid4().hex}"}
    try:
        async with httpx.AsyncClient(base_url=live.url, timeout=120) as client:
            batch = asyncio.create_task(
                client.post(tenant.path("/invoices/batch"), json=body, headers=headers)
            )
            seen = 0  # consecutive looks at a write in progress
            deadline = time.monotonic() + 60
            while seen < 3:
                assert not batch.done(), "the batch finished before it could be interrupted"
                assert time.monotonic() < deadline, "never saw the batch being written"
                seen = seen + 1 if await _writing(database_url, name) else 0
                await asyncio.sleep(0.01)
            workers = _workers(live)
            assert len(workers) == 2
            for pid in workers:
                os.kill(pid, signal.SIGKILL)
            with pytest.raises(httpx.TransportError):
                await batch  # the connection died with the worker: no answer at all
            assert await book_counts(tenant.id) == (0, 0, 0)  # all or nothing: nothing

            # uvicorn's supervisor starts new workers; the retry waits out the dead claim.
            deadline = time.monotonic() + 120
            while True:
                assert time.monotonic() < deadline, "the retry never went through"
                try:
                    retry = await client.post(
                        tenant.path("/invoices/batch"), json=body, headers=headers
                    )
                except httpx.TransportError:
                    retry = None  # the workers are still starting
                if retry is not None and retry.status_code != 409:
                    break
                await asyncio.sleep(0.5)
            assert retry.status_code == 200, retry.text
            assert retry.json() == {"created": ROWS, "updated": 0, "unchanged": 0}
            replay = await client.post(tenant.path("/invoices/batch"), json=body, headers=headers)
            assert replay.json() == retry.json()
            assert replay.headers.get("idempotent-replayed") == "true"
        debtors, invoices, payments = await book_counts(tenant.id)
        assert (debtors, invoices, payments) == (300, ROWS, 0)
    finally:
        live.stop()
