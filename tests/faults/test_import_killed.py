"""An RQ work horse killed (SIGKILL) while it writes an import: nothing half-loaded, and the
import is retried to `done` (the job's one retry) or, killed again, shown `failed`, never
left `running`. A real server, a real `kravlab worker` and Redis; both engines."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator.history import load_history
from simulator.worlds import generate, write
from tests.support.db import book_counts
from tests.support.server import LiveServer
from tests.support.world import agency_user, onboard

pytestmark = pytest.mark.redis

# Large enough that writing takes seconds on either engine, so the kill lands mid-write.
INVOICES = 150_000


@pytest.fixture(scope="module")
def history_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("killed") / "history"
    write(generate("retail-b2c", INVOICES, seed=11), folder)
    return folder


def _horses(worker: subprocess.Popen[bytes]) -> list[int]:
    """The worker's forked work horses (children of its main process)."""
    path = Path(f"/proc/{worker.pid}/task/{worker.pid}/children")
    return [int(pid) for pid in path.read_text().split()] if path.exists() else []


async def _state(http, tenant, import_id) -> dict[str, Any]:
    r = await http.get(tenant.path(f"/imports/{import_id}"), headers=tenant.key)
    assert r.status_code == 200, r.text
    return r.json()


async def _kill_while_writing(http, tenant, import_id, worker, after: str | None) -> str:
    """Wait for an attempt (started after `after`) to be writing, kill its horse, return
    that attempt's started_at."""
    deadline = time.monotonic() + 180
    while True:
        state = await _state(http, tenant, import_id)
        assert state["status"] != "done", "the import finished before it could be interrupted"
        if state["stage"] == "writing" and state["started_at"] != after:
            break
        assert time.monotonic() < deadline, state
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # into the transaction's writes
    horses = _horses(worker)
    assert horses, "no work horse to kill"
    state = await _state(http, tenant, import_id)
    assert state["status"] == "running", state
    for pid in horses:
        os.kill(pid, signal.SIGKILL)
    return str(state["started_at"])


async def _final(http, tenant, import_id) -> dict[str, Any]:
    deadline = time.monotonic() + 300
    while True:
        # Never half-loaded: until the import is done the book holds none of it (counted
        # first, so a commit between the two looks shows as done).
        counts = await book_counts(tenant.id)
        state = await _state(http, tenant, import_id)
        if state["status"] in ("done", "failed"):
            return state
        assert counts == (0, 0, 0), (counts, state)
        assert time.monotonic() < deadline, state
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("kills", [1, 2], ids=["killed-once-retried", "killed-twice-failed"])
async def test_a_killed_import_is_retried_or_failed_never_half_loaded(
    migrated, redis_url, history_dir, kills
):
    from redis import Redis

    Redis.from_url(redis_url).flushdb()
    live = LiveServer(REDIS_URL=redis_url).start()
    worker = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "worker"],
        env={**os.environ, "REDIS_URL": redis_url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(base_url=live.url, timeout=300) as http:
            tenant = await onboard(http, await agency_user(http))
            files = {
                name: (name, (history_dir / name).read_bytes(), "text/csv")
                for name in ("invoices.csv", "payments.csv", "actions.csv")
            }
            r = await http.post(tenant.path("/imports"), files=files, headers=tenant.key)
            assert r.status_code == 202, r.text
            import_id = r.json()["id"]
            started = None
            for _ in range(kills):
                started = await _kill_while_writing(http, tenant, import_id, worker, started)
                assert await book_counts(tenant.id) == (0, 0, 0)
            final = await _final(http, tenant, import_id)
        history = load_history(history_dir)
        if kills == 1:
            assert final["status"] == "done", final
            assert (final["invoices"], final["payments"], final["contacts"]) == (
                history.size,
                len(history.pay_amount),
                len(history.act_fee),
            )
            assert (await book_counts(tenant.id))[1:] == (history.size, len(history.pay_amount))
        else:
            assert final["status"] == "failed", final
            assert "worker loading it stopped" in final["errors"][0]["message"]
            assert await book_counts(tenant.id) == (0, 0, 0)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        live.stop()
