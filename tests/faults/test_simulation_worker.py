"""The simulation service's jobs under faults, with a real `kravlab worker` on a throwaway
Redis: a worker killed mid-simulation leaves it failed (never running forever) and the same
request then runs again; with Redis down a simulation is refused with a 503 and nothing is
written, while ingest keeps working."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx

from simulator.worlds import generate
from tests.support.server import LiveServer
from tests.support.world import agency_user, book_rows, invoice, login, onboard

STALE = "4"  # KRAVLAB_JOB_STALE_SECONDS for these servers and workers
CANDIDATES = {
    "sms": {"name": "SMS", "steps": [{"day": 3, "action": "reminder", "channel": "sms"}]},
}


def _kill(worker: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker and the work horse it forked for the job (RQ puts the horse in a
    session of its own, so a kill of the worker's group would miss it): a machine dying."""
    pid = worker.pid
    with contextlib.suppress(FileNotFoundError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(child), signal.SIGKILL)
    worker.kill()
    worker.wait(timeout=30)


def _worker(redis_url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "worker"],
        env={**os.environ, "REDIS_URL": redis_url, "KRAVLAB_JOB_STALE_SECONDS": STALE},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _poll(http: Any, path: str, headers: Any, until: Any, within: float) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        body = (await http.get(path, headers=headers)).json()
        if until(body):
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.2)


async def test_a_worker_killed_mid_simulation_leaves_it_failed_then_it_runs_again(
    migrated, own_redis
):
    live = LiveServer(REDIS_URL=own_redis.url, KRAVLAB_JOB_STALE_SECONDS=STALE).start()
    worker = _worker(own_redis.url)
    try:
        async with httpx.AsyncClient(base_url=live.url, timeout=120) as http:
            tenant = await onboard(http, await agency_user(http))
            session = await login(http, tenant.admin_email, tenant.admin_password)
            invoices, payments = book_rows(generate("retail-b2c", 20000, 8, as_of=date.today()))
            for rows, kind in ((invoices, "invoices"), (payments, "payments")):
                for start in range(0, len(rows), 10_000):
                    r = await http.post(
                        tenant.path(f"/{kind}/batch"),
                        json={kind: rows[start : start + 10_000]},
                        headers=tenant.key,
                    )
                    assert r.status_code == 200, r.text
            request = {"candidates": CANDIDATES}
            first = (
                await http.post(tenant.path("/simulations"), json=request, headers=session)
            ).json()
            where = tenant.path(f"/simulations/{first['id']}")
            # the worker took it and is fitting the model (no model yet): kill it there
            await _poll(http, where, session, lambda b: b["status"] == "running", 120)
            _kill(worker)
            failed = await _poll(http, where, session, lambda b: b["status"] != "running", 60)
            assert failed["status"] == "failed" and "stopped" in failed["error"], failed
            assert failed["result"] is None

            # a new worker, the same request: not the failed one again, a new run that finishes
            worker = _worker(own_redis.url)
            again = (
                await http.post(tenant.path("/simulations"), json=request, headers=session)
            ).json()
            assert again["id"] != first["id"] and again["reused"] is False
            done = await _poll(
                http,
                tenant.path(f"/simulations/{again['id']}"),
                session,
                lambda b: b["status"] in ("done", "failed"),
                300,
            )
            assert done["status"] == "done", done["error"]
            assert list(done["result"]["results"]) == ["live", "sms"]
    finally:
        _kill(worker)
        live.stop()


async def test_with_redis_down_simulations_are_refused_and_ingest_goes_on(migrated, own_redis):
    live = LiveServer(REDIS_URL=own_redis.url).start()
    try:
        async with httpx.AsyncClient(base_url=live.url, timeout=60) as http:
            tenant = await onboard(http, await agency_user(http))
            session = await login(http, tenant.admin_email, tenant.admin_password)
            own_redis.kill()
            refused = await http.post(
                tenant.path("/simulations"), json={"candidates": CANDIDATES}, headers=session
            )
            assert refused.status_code == 503, refused.text
            assert "queue is unavailable" in refused.json()["message"]
            fit = await http.post(tenant.path("/model"), headers=session)
            assert fit.status_code == 503
            listed = await http.get(tenant.path("/simulations"), headers=session)
            assert listed.status_code == 200 and listed.json()["items"] == []  # nothing written
            assert (await http.get(tenant.path("/model"), headers=session)).status_code == 404
            batch = await http.post(
                tenant.path("/invoices/batch"),
                json={"invoices": [invoice("RD-SIM")]},
                headers=tenant.key,
            )
            assert batch.status_code == 200, batch.text
    finally:
        live.stop()
