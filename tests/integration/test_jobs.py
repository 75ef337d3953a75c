"""Background jobs on a real Redis with a real RQ worker process, the in-process fallback on
the server's own loop, and a shutdown that cannot hang on either."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import httpx
import pytest

from backend import jobs, queue
from backend.tables import IdempotencyRecord
from tests.support.db import book_counts
from tests.support.server import LiveServer
from tests.support.world import invoice

pytestmark = pytest.mark.redis

# A batch still being written when SIGTERM comes: small enough to finish within uvicorn's
# graceful timeout (backend.cli.GRACEFUL_SHUTDOWN_SECONDS) on a loaded machine.
IN_FLIGHT_ROWS = 1500


async def _records(settings):
    owner = f"jobs-{uuid4().hex[:8]}"
    old = datetime.now(UTC) - timedelta(hours=settings.idempotency_ttl_hours + 2)
    for key, at in (("old-1", old), ("old-2", old), ("fresh", datetime.now(UTC))):
        await IdempotencyRecord.insert(
            IdempotencyRecord(
                id=uuid4(),
                owner=owner,
                credential=f"key:{owner}",
                key=key,
                request_hash="h",
                in_flight=False,
                created_at=at,
            )
        )
    return owner


async def _keys(owner):
    rows = await IdempotencyRecord.select(IdempotencyRecord.key).where(
        IdempotencyRecord.owner == owner
    )
    return sorted(r["key"] for r in rows)


async def test_rq_worker_runs_the_purge_job(settings, redis_url):
    from redis import Redis
    from rq.job import Job

    Redis.from_url(redis_url).flushdb()
    owner = await _records(settings)
    with_redis = replace(settings, redis_url=redis_url)
    job_id = queue.enqueue(with_redis, jobs.purge_idempotency_keys)
    assert job_id is not None
    worker = subprocess.run(
        [sys.executable, "-m", "backend.cli", "worker", "--burst"],
        env={**os.environ, "REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert worker.returncode == 0, worker.stdout + worker.stderr
    job = Job.fetch(job_id, connection=Redis.from_url(redis_url))
    assert job.is_finished and job.return_value() >= 2
    assert await _keys(owner) == ["fresh"]


def test_periodic_jobs_are_scheduled_once(settings, redis_url):
    from redis import Redis
    from rq.registry import ScheduledJobRegistry

    Redis.from_url(redis_url).flushdb()
    with_redis = replace(settings, redis_url=redis_url)
    queue.schedule_periodic(with_redis)
    queue.schedule_periodic(with_redis)  # a restarted worker must not start a second chain
    scheduled = ScheduledJobRegistry(queue=queue.rq_queue(with_redis)).get_job_ids()
    assert len([j for j in scheduled if j.startswith("periodic-purge_idempotency_keys-")]) == 1


async def test_without_redis_jobs_run_in_process(settings):
    owner = await _records(settings)
    assert queue.enqueue(replace(settings, redis_url=None), jobs.purge_idempotency_keys) is None
    deadline = time.monotonic() + 30
    while await _keys(owner) != ["fresh"] and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert await _keys(owner) == ["fresh"]


def test_worker_refuses_to_start_without_redis():
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "backend.cli", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "REDIS_URL" in result.stdout


def _ansi_free(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _purge_runs(live: LiveServer) -> list[str]:
    """The `pool_in_use` of every periodic purge the server logged, in order."""
    return re.findall(
        r"purged idempotency records.*?pool_in_use=(\S+)", _ansi_free(live.log.read_text())
    )


async def _connections(application_name: str) -> list[str]:
    import asyncpg

    connection = await asyncpg.connect(os.environ["DATABASE_URL"])
    try:
        rows = await connection.fetch(
            "SELECT state FROM pg_stat_activity WHERE application_name = $1", application_name
        )
    finally:
        await connection.close()
    return [row["state"] for row in rows]


def _sigterm_and_wait(live: LiveServer) -> None:
    """SIGTERM; fails unless the server shut down cleanly and exited within 10 s."""
    assert live.process is not None
    live.process.send_signal(signal.SIGTERM)
    try:
        # uvicorn re-raises the signal it handled once shut down: -SIGTERM is a clean exit.
        assert live.process.wait(timeout=10) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in live.log.read_text()
    except subprocess.TimeoutExpired:
        live.process.kill()
        live.process.wait()
        pytest.fail(
            "kravlab serve still running 10 s after SIGTERM:\n" + live.log.read_text()[-3000:]
        )


async def test_periodic_jobs_run_on_the_server_loop_and_give_back_their_connections(
    settings, database_url
):
    """Many purges in a row must neither leak pooled connections nor block the shutdown.

    The pool holds 3 connections: before the fix every in-process purge kept one, so the
    fourth run onwards (and every request) waited forever, and SIGTERM never finished.
    """
    owner = await _records(settings)
    name = f"kravlab-jobs-{uuid4().hex[:8]}"
    live = LiveServer(
        KRAVLAB_PURGE_INTERVAL_SECONDS="0.05",
        KRAVLAB_DB_POOL_SIZE="3",
        KRAVLAB_DB_APPLICATION_NAME=name,
        KRAVLAB_LOG_LEVEL="info",
    ).start()
    try:
        deadline = time.monotonic() + 60
        while len(_purge_runs(live)) < 40 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        runs = _purge_runs(live)
        assert len(runs) >= 40, live.log.read_text()[-3000:]
        assert await _keys(owner) == ["fresh"]
        for _ in range(10):  # requests still get connections after 40+ runs
            assert httpx.get(live.url + "/health", timeout=10).status_code == 200
        if database_url.startswith("postgresql"):
            # Each run gave its connection back (the first runs overlap the start-up's
            # health checks, which hold one for a moment).
            assert set(runs[-20:]) == {"0"}, runs
            states = await _connections(name)
            assert 1 <= len(states) <= 3 and "idle in transaction" not in states, states
        else:
            assert set(runs) == {"None"}  # SQLite: no pool, a connection per query
    finally:
        _sigterm_and_wait(live)
    assert "Traceback" not in live.log.read_text()
    if database_url.startswith("postgresql"):
        assert await _connections(name) == []  # the pool closed with the process


def test_a_failing_periodic_job_is_logged_and_the_next_run_comes(tmp_path):
    """A broken run must show in the log with its cause, and must not stop the schedule."""
    broken = f"sqlite:///{tmp_path / 'unmigrated.sqlite3'}"  # no tables: every purge fails
    live = LiveServer(
        DATABASE_URL=broken,
        KRAVLAB_PURGE_INTERVAL_SECONDS="0.05",
        KRAVLAB_LOG_LEVEL="info",
    )
    live.process = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "serve", "--port", str(live.port), "--workers", "1"],
        env=live.env,
        stdout=live.log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            failures = _ansi_free(live.log.read_text()).count("periodic job failed")
            if failures >= 3:
                break
            time.sleep(0.2)
        log = _ansi_free(live.log.read_text())
        assert log.count("periodic job failed") >= 3, log[-3000:]
        assert "job=purge_idempotency_keys" in log and "no such table" in log
    finally:
        _sigterm_and_wait(live)


async def test_sigterm_lets_an_in_flight_batch_finish_then_exits(tenant):
    """SIGTERM while a batch is being written: the batch completes (201/200), then the
    server exits within 10 s, with two workers (uvicorn's supervisor) as in production."""
    live = LiveServer(workers=2).start()
    try:
        for _ in range(20):
            r = httpx.get(live.url + tenant.path("/invoices?limit=5"), headers=tenant.key)
            assert r.status_code == 200
        body = json.dumps(
            {"invoices": [invoice(f"S-{i}", debtor=f"D-{i % 40}") for i in range(IN_FLIGHT_ROWS)]}
        )
        connection = http.client.HTTPConnection("127.0.0.1", live.port, timeout=30)
        connection.request(
            "POST",
            tenant.path("/invoices/batch"),
            body=body,
            headers={**tenant.key, "content-type": "application/json"},
        )  # returns once the request is sent: the server is working on it
        time.sleep(0.2)
        assert live.process is not None
        live.process.send_signal(signal.SIGTERM)
        response = connection.getresponse()
        assert response.status == 200, response.read()
        assert json.loads(response.read())["created"] == IN_FLIGHT_ROWS
    finally:
        _sigterm_and_wait(live)
    assert (await book_counts(tenant.id))[1] == IN_FLIGHT_ROWS
