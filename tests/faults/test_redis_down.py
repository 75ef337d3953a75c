"""Redis down: queued work is refused with a clear 503 and nothing acknowledged is lost; the
API keeps answering, its limits failing open and login failing closed (backend.limit_store).
Done to a throwaway redis-server, never the machine's shared one."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import replace

import httpx
import pytest

from backend import jobs, queue
from tests.support.server import LiveServer
from tests.support.world import agency_user, invoice, onboard


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


async def test_the_api_keeps_answering_while_its_limit_store_is_down(migrated, own_redis):
    live = LiveServer(REDIS_URL=own_redis.url).start()
    try:
        async with httpx.AsyncClient(base_url=live.url, timeout=30) as http:
            tenant = await onboard(http, await agency_user(http))
            login = {"email": tenant.admin_email, "password": tenant.admin_password}
            assert (await http.post("/api/v1/auth/login", json=login)).status_code == 200

            own_redis.kill()
            answers = []
            for n in range(5):
                listing = await http.get(tenant.path("/invoices"), headers=tenant.key)
                batch = await http.post(
                    tenant.path("/invoices/batch"),
                    json={"invoices": [invoice(f"RD-{n}")]},
                    headers=tenant.key,
                )
                wrong = await http.get(
                    tenant.path("/invoices"), headers={"Authorization": "Bearer kl_wrong"}
                )
                logged_in = await http.post("/api/v1/auth/login", json=login)
                answers.append(
                    (
                        listing.status_code,
                        batch.status_code,
                        wrong.status_code,
                        logged_in.status_code,
                    )
                )
            # Fail open: keys keep working, writes too; a wrong key is still refused.
            # Fail closed: login, whose throttle cannot count guesses now.
            assert answers == [(200, 200, 401, 503)] * 5, answers
            assert "login is unavailable" in logged_in.json()["message"]

            own_redis.start()
            deadline = time.monotonic() + 30
            while (await http.post("/api/v1/auth/login", json=login)).status_code != 200:
                assert time.monotonic() < deadline, "login did not come back with Redis"
                await asyncio.sleep(0.2)
            listing = await http.get(tenant.path("/invoices"), headers=tenant.key)
            assert {i["external_id"] for i in listing.json()["items"]} == {
                f"RD-{n}" for n in range(5)
            }
    finally:
        live.stop()
    assert "Redis unavailable for limits" in live.log.read_text()
