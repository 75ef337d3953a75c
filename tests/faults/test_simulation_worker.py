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
    """A real `kravlab worker`, its output kept under the var dir for a failure's reading."""
    log = Path(os.environ["KRAVLAB_VAR_DIR"]) / f"worker-{time.monotonic_ns()}.log"
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "backend.cli", "worker"],
            env={**os.environ, "REDIS_URL": redis_url, "KRAVLAB_JOB_STALE_SECONDS": STALE},
            stdout=output,
            stderr=subprocess.STDOUT,
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


async def test_a_portfolio_fans_out_over_two_workers_and_combines(migrated, own_redis):
    """One job per tenant taken by either of two real workers, then the combining job."""
    from redis import Redis
    from rq import Queue
    from rq.job import Job
    from rq.registry import FinishedJobRegistry

    from backend.queue import SIMULATION_QUEUE

    live = LiveServer(REDIS_URL=own_redis.url).start()
    workers = [_worker(own_redis.url), _worker(own_redis.url)]
    try:
        async with httpx.AsyncClient(base_url=live.url, timeout=120) as http:
            agency = await agency_user(http)
            tenants = []
            for seed in range(4):
                tenant = await onboard(http, agency)
                invoices, payments = book_rows(
                    generate("retail-b2c", 1500, 20 + seed, as_of=date.today())
                )
                for rows, kind in ((invoices, "invoices"), (payments, "payments")):
                    r = await http.post(
                        tenant.path(f"/{kind}/batch"), json={kind: rows}, headers=tenant.key
                    )
                    assert r.status_code == 200, r.text
                tenants.append(tenant)
            body = {"tenant_ids": [t.id for t in tenants], "horizon_days": 90}
            r = await http.post("/api/v1/portfolio/simulations", json=body, headers=agency)
            assert r.status_code == 202, r.text
            run = await _poll(
                http,
                f"/api/v1/portfolio/simulations/{r.json()['id']}",
                agency,
                lambda b: b["status"] in ("done", "partial", "failed"),
                600,
            )
            assert run["status"] == "done", run
            sek = run["result"]["currencies"]["SEK"]
            parts = run["result"]["tenants"]
            assert sek["tenants"] == 4 and {p["tenant_id"] for p in parts} == {
                t.id for t in tenants
            }
            # the combination is the tenants' own forecasts, each read through its own tenant
            cohorts = []
            for tenant, part in zip(tenants, parts, strict=True):
                assert part["tenant_id"] == tenant.id
                session = await login(http, tenant.admin_email, tenant.admin_password)
                own = (
                    await http.get(
                        tenant.path(f"/simulations/{part['simulation_id']}"), headers=session
                    )
                ).json()
                assert own["status"] == "done"
                cohorts.append(own["result"]["cohort"])
                assert own["result"]["model"]["invoices"] == 1500  # its own rows only
            assert sek["invoices"] == sum(c["invoices"] for c in cohorts)
            assert sek["amount"] == sum(c["amount"] for c in cohorts)
            recoveries = [p["recovery"]["90"] for p in parts]
            assert min(recoveries) <= sek["recovery"]["90"] <= max(recoveries)

        connection = Redis.from_url(own_redis.url)
        finished = FinishedJobRegistry(queue=Queue(SIMULATION_QUEUE, connection=connection))
        jobs = [Job.fetch(job_id, connection=connection) for job_id in finished.get_job_ids()]
        names = {job.func_name.rsplit(".", 1)[-1] for job in jobs}
        assert {"run_simulation", "combine_portfolio"} <= names
        combine = next(j for j in jobs if j.func_name.endswith("combine_portfolio"))
        ran = [j for j in jobs if j.func_name.endswith("run_simulation")]
        assert len(ran) == 4 and all(j.ended_at <= combine.started_at for j in ran)
        assert len({j.worker_name for j in ran}) == 2, "both workers took tenants' jobs"
    finally:
        for worker in workers:
            _kill(worker)
        live.stop()
