"""Redis down: queued work is refused with a clear 503 and nothing acknowledged is lost.
Done to a throwaway redis-server, never the machine's shared one."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import pytest

from backend import jobs, queue


def test_enqueue_while_redis_is_down_is_a_503_and_queued_jobs_survive_a_crash(settings, own_redis):
    from redis import Redis
    from rq.job import Job

    with_redis = replace(settings, redis_url=own_redis.url)
    queued = [queue.enqueue(with_redis, jobs.purge_idempotency_keys) for _ in range(5)]
    assert all(queued)

    own_redis.kill()  # a crash, after the jobs were acknowledged
    with pytest.raises(queue.QueueUnavailable) as refused:
        queue.enqueue(with_redis, jobs.purge_idempotency_keys)
    assert refused.value.status_code == 503
    assert "queue is unavailable" in refused.value.detail

    own_redis.start()
    worker = subprocess.run(
        [sys.executable, "-m", "backend.cli", "worker", "--burst"],
        env={**os.environ, "REDIS_URL": own_redis.url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert worker.returncode == 0, worker.stdout + worker.stderr
    connection = Redis.from_url(own_redis.url)
    assert [Job.fetch(job_id, connection=connection).get_status() for job_id in queued] == [
        "finished"
    ] * 5
