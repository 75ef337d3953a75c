"""Where background jobs run: RQ on Redis when REDIS_URL is set, else in this process.

The same job code (`backend.jobs`) runs either way: RQ imports a job's synchronous entry
point by name; the embedded mode awaits its async core as a task of the server's own event
loop (never a thread with a loop of its own, which cannot share the server's pool).
Periodic jobs are listed once here; `kravlab worker` schedules them with RQ's scheduler,
the embedded mode with one asyncio task each, started and cancelled with the app.

Model fits and simulations go on a queue of their own (`SIMULATION_QUEUE`), which
`kravlab worker` takes only when the main queue is empty, so they never hold up ingest.

With Redis configured but down, `enqueue` raises `QueueUnavailable`, a 503 the client can
retry: work is refused, never accepted and dropped.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import uuid4

import structlog
from litestar.exceptions import ServiceUnavailableException

from backend import jobs
from backend.settings import Settings, get_settings
from tenants import clock
from tenants.scope import TenantScope

QUEUE_NAME = "kravlab"
# Model fits and simulations (minutes each) have a queue of their own, which `kravlab worker`
# takes only when the first is empty: a tenant's simulations never hold up an import, a
# dunning run, letters or webhooks.
SIMULATION_QUEUE = "kravlab-simulations"
WORKER_QUEUES = (QUEUE_NAME, SIMULATION_QUEUE)

log = structlog.get_logger("kravlab.queue")


class QueueUnavailable(ServiceUnavailableException):
    """Redis is configured but cannot take the job; nothing was queued."""


# The file sweep (`offboarding.sweep`) removes only folders unchanged for a day: a few runs a
# day are plenty, and it stays out of the way of the frequent jobs.
SWEEP_INTERVAL_SECONDS = 6 * 3600


@dataclass(frozen=True)
class Periodic:
    run: Callable[[], Any]  # RQ's entry point: top-level, importable, synchronous
    core: Callable[[Settings], Coroutine[Any, Any, Any]]  # awaited on the server's loop in-process
    interval: Callable[[Settings], float]  # seconds between runs


PERIODIC: list[Periodic] = [
    Periodic(
        jobs.purge_idempotency_keys,
        jobs.purge_idempotency_keys_now,
        lambda settings: settings.purge_interval_seconds,
    ),
    Periodic(
        jobs.run_dunning,
        jobs.run_dunning_now,
        lambda settings: settings.dunning_interval_seconds,
    ),
    Periodic(
        jobs.sweep_files,
        jobs.sweep_files_now,
        lambda settings: SWEEP_INTERVAL_SECONDS,
    ),
    Periodic(
        jobs.deliver_webhooks,
        jobs.deliver_webhooks_now,
        lambda settings: settings.webhook_interval_seconds,
    ),
]

# Each job's entry point and its async core, for in-process runs of `enqueue`.
CORES: dict[Callable[..., Any], Callable[..., Coroutine[Any, Any, Any]]] = {
    **{periodic.run: periodic.core for periodic in PERIODIC},
    jobs.fit_model: jobs.fit_model_now,
    jobs.run_simulation: jobs.run_simulation_now,
    jobs.combine_portfolio: jobs.combine_portfolio_now,
    jobs.load_import: jobs.load_import_now,
    jobs.render_letters: jobs.render_letters_now,  # queued by each dunning run
}

# Jobs that go on SIMULATION_QUEUE; every other job goes on QUEUE_NAME.
ON_SIMULATION_QUEUE = frozenset({jobs.fit_model, jobs.run_simulation, jobs.combine_portfolio})

_running: set[asyncio.Task[Any]] = set()  # strong references: the loop keeps only weak ones


def redis_connection(url: str) -> Any:
    """A client that gives up on a dead Redis in seconds (a request is waiting on it)."""
    from redis import Redis

    return Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)


async def lost_jobs(settings: Settings, job_ids: list[str]) -> set[str]:
    """Of these RQ job ids, the ones that will never run: gone from Redis (lost when it
    restarted: it keeps nothing on disk here, or flushed), or held as failed, stopped or
    cancelled (a job that died before it could claim its row). Empty without Redis or when
    it cannot be asked: a job is not judged lost on no evidence. Asked from a thread: a
    Redis that drops packets must not stall the server's loop."""
    if not settings.redis_url or not job_ids:
        return set()
    url = settings.redis_url

    def ask() -> list[Any]:
        from rq.job import Job

        with redis_connection(url).pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hget(Job.key_for(job_id), "status")
            return list(pipe.execute())

    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    try:
        found = await asyncio.to_thread(ask)
    except (RedisConnectionError, RedisTimeoutError):
        return set()
    dead = {None, b"failed", b"stopped", b"canceled"}
    return {job_id for job_id, status in zip(job_ids, found, strict=True) if status in dead}


async def fail_lost_queued(
    scope: TenantScope,
    settings: Settings,
    table: Any,
    job_id_of: Callable[[Any], str],
    values: dict[Any, Any],
) -> None:
    """Rows of `table` (a job-backed table: id, status, created_at) still queued after
    KRAVLAB_JOB_STALE_SECONDS whose RQ job will never run (`lost_jobs`) get `values`: failed,
    and why. Left queued they would be waited for, and hold the tenant's caps, for ever."""
    cutoff = clock.now() - timedelta(seconds=settings.job_stale_seconds)
    waiting = await scope.select(table, table.id).where(
        (table.status == "queued") & (table.created_at < cutoff)
    )
    by_job = {job_id_of(row["id"]): row["id"] for row in waiting}
    lost = await lost_jobs(settings, list(by_job))
    if lost:
        await scope.update(table, values).where(
            table.id.is_in([by_job[job] for job in lost]) & (table.status == "queued")
        )


def rq_queue(settings: Settings, name: str = QUEUE_NAME) -> Any:
    from rq import Queue

    assert settings.redis_url
    return Queue(name, connection=redis_connection(settings.redis_url))


def enqueue(
    settings: Settings,
    func: Callable[..., Any],
    *args: Any,
    job_id: str | None = None,
    timeout: float | None = None,
    depends_on: list[str] | None = None,
    retries: int = 0,
) -> str | None:
    """Run `func(*args)` in the background; returns the RQ job id (None in-process).

    On RQ, a job whose worker dies is run again up to `retries` times (jobs are
    idempotent), and one running past `timeout` seconds is stopped.
    In-process, the job's async core becomes a task of the running loop, so this must be
    called from the server's loop (a handler), which is the only caller there is.
    """
    if settings.redis_url:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        try:
            from rq import Retry
            from rq.job import Dependency

            # A dependent job runs once its dependencies have ended, failed ones included:
            # it reports them rather than waiting forever.
            dependency = Dependency(jobs=depends_on, allow_failure=True) if depends_on else None
            name = SIMULATION_QUEUE if func in ON_SIMULATION_QUEUE else QUEUE_NAME
            job = rq_queue(settings, name).enqueue(
                func,
                *args,
                job_id=job_id,
                retry=Retry(max=retries) if retries else None,
                job_timeout=int(timeout) if timeout else None,
                depends_on=dependency,
            )
            return str(job.id)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            log.warning("job refused, Redis unavailable", job=func.__name__, error=str(exc))
            raise QueueUnavailable("the job queue is unavailable, retry shortly") from exc
    task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(CORES[func](settings, *args))
    _running.add(task)
    task.add_done_callback(_finished(func.__name__))
    return None


def _finished(name: str) -> Callable[[asyncio.Task[Any]], None]:
    def done(task: asyncio.Task[Any]) -> None:
        _running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background job failed", job=name, exc_info=task.exception())

    return done


async def drain(within: float) -> None:
    """At shutdown: let in-process jobs finish for up to `within` seconds, then cancel."""
    if not _running:
        return
    _, pending = await asyncio.wait(set(_running), timeout=within)
    for task in pending:
        log.warning("background job cancelled at shutdown", task=task.get_name())
        task.cancel()


def schedule_periodic(settings: Settings) -> None:
    """Start each periodic job's chain unless one is already on RQ's schedule.

    Each run schedules the next (`_repeating`), so a restarted worker must not start a
    second chain; the jobs are idempotent, so a rare duplicate from two workers starting at
    once costs a redundant run, nothing more.
    """
    from rq.registry import ScheduledJobRegistry

    queue = rq_queue(settings)
    scheduled = ScheduledJobRegistry(queue=queue).get_job_ids()
    for periodic in PERIODIC:
        func = periodic.run
        if not any(job_id.startswith(f"periodic-{func.__name__}-") for job_id in scheduled):
            _schedule_next(queue, func.__module__, func.__name__, periodic.interval(settings))


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
    _schedule_next(rq_queue(get_settings()), module, name, seconds)
    return func()


async def run_periodic_in_process(settings: Settings) -> None:
    """The embedded mode's scheduler: one loop per periodic job, on the server's loop.

    A run that fails is logged with its traceback and the next one comes at its time; only
    cancellation (the app shutting down) ends the loops.
    """
    async with asyncio.TaskGroup() as group:
        for periodic in PERIODIC:
            group.create_task(_every(periodic, settings))


async def _every(periodic: Periodic, settings: Settings) -> None:
    name = periodic.run.__name__
    while True:
        await asyncio.sleep(periodic.interval(settings))
        try:
            await periodic.core(settings)
        except Exception:
            log.exception("periodic job failed", job=name)


def run_worker(
    settings: Settings, burst: bool = False, queues: tuple[str, ...] = WORKER_QUEUES
) -> None:
    """An RQ worker on `queues`, in order. With every queue (the default) it takes a
    simulation only when no other job waits, but once it has taken one (minutes) an import
    or a dunning run queued after it waits too; a worker on `QUEUE_NAME` alone beside it
    never takes a simulation, so ingest's jobs never wait behind one."""
    from redis import Redis
    from rq import Worker

    # No socket timeout here: the worker blocks on the queue for minutes by design.
    connection = Redis.from_url(settings.redis_url or "")
    if not burst:
        schedule_periodic(settings)
    Worker(list(queues), connection=connection).work(with_scheduler=True, burst=burst)
