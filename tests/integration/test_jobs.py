"""Background jobs on a real Redis with a real RQ worker process, and the in-process fallback."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from backend import jobs, queue
from backend.tables import IdempotencyRecord

pytestmark = pytest.mark.redis


async def _records(settings):
    owner = f"jobs-{uuid4().hex[:8]}"
    old = datetime.now(UTC) - timedelta(hours=settings.idempotency_ttl_hours + 2)
    for key, at in (("old-1", old), ("old-2", old), ("fresh", datetime.now(UTC))):
        await IdempotencyRecord.insert(
            IdempotencyRecord(
                id=uuid4(), owner=owner, key=key, request_hash="h", in_flight=False, created_at=at
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
