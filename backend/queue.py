"""Where background jobs run: RQ on Redis when REDIS_URL is set, else in this process.

The same job functions (`backend.jobs`) run either way. Periodic jobs are listed once here;
`kravlab worker` schedules them with RQ's scheduler, the embedded mode with an asyncio task.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any
from uuid import uuid4

from backend import jobs
from backend.settings import Settings

QUEUE_NAME = "kravlab"
# (job function, interval): run every interval by whichever runner is in charge.
PERIODIC: list[tuple[Callable[[], Any], timedelta]] = [
    (jobs.purge_idempotency_keys, timedelta(hours=1)),
]

_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kravlab-job")


def redis_connection(url: str) -> Any:
    from redis import Redis

    return Redis.from_url(url)


def rq_queue(settings: Settings) -> Any:
    from rq import Queue

    assert settings.redis_url
    return Queue(QUEUE_NAME, connection=redis_connection(settings.redis_url))


def enqueue(
    settings: Settings, func: Callable[..., Any], *args: Any, job_id: str | None = None
) -> str | None:
    """Run `func(*args)` in the background; returns the RQ job id (None in-process)."""
    if settings.redis_url:
        return rq_queue(settings).enqueue(func, *args, job_id=job_id).id
    _executor.submit(func, *args)
    return None


def schedule_periodic(settings: Settings) -> None:
    """Start each periodic job's chain unless one is already on RQ's schedule.

    Each run schedules the next (`_repeating`), so a restarted worker must not start a
    second chain; the jobs are idempotent, so a rare duplicate from two workers starting at
    once costs a redundant run, nothing more.
    """
    from rq.registry import ScheduledJobRegistry

    queue = rq_queue(settings)
    scheduled = ScheduledJobRegistry(queue=queue).get_job_ids()
    for func, interval in PERIODIC:
        if not any(job_id.startswith(f"periodic-{func.__name__}-") for job_id in scheduled):
            _schedule_next(queue, func.__module__, func.__name__, interval.total_seconds())


def _schedule_next(queue: Any, module: str, name: str, seconds: float) -> None:
    queue.enqueue_in(
        timedelta(seconds=seconds),
        _repeating,
        module,
        name,
        seconds,
        job_id=f"periodic-{name}-{uuid4().hex}",
    )


def _repeating(module: str, name: str, seconds: float) -> Any:
    """Run a periodic job and put its next run on the schedule."""
    func = getattr(importlib.import_module(module), name)
    _schedule_next(rq_queue(Settings.from_env()), module, name, seconds)
    return func()


async def run_periodic_in_process() -> None:
    """The embedded mode's scheduler: an asyncio task of the API process."""
    loop = asyncio.get_running_loop()
    while True:
        for func, _interval in PERIODIC:
            with contextlib.suppress(Exception):
                await loop.run_in_executor(_executor, func)
        await asyncio.sleep(min(i.total_seconds() for _, i in PERIODIC))


def run_worker(settings: Settings, burst: bool = False) -> None:
    from rq import Worker

    connection = redis_connection(settings.redis_url or "")
    if not burst:
        schedule_periodic(settings)
    Worker([QUEUE_NAME], connection=connection).work(with_scheduler=True, burst=burst)
