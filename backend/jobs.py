"""Background job functions: importable, top-level, taking ids, and idempotent.

Each job is an async core (`..._now`) and a synchronous entry point of the job's name for
RQ, which imports it by name in the worker process and runs the core on a loop of its own.
The in-process mode (no REDIS_URL) awaits the core on the server's own event loop instead:
running it in a thread with `asyncio.run` would borrow pooled connections owned by the
server's loop, which is how an hourly purge used to leak one connection per run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar
from uuid import UUID

import structlog

from backend.database import close_pool, current, open_pool, pool_in_use
from backend.idempotency import purge_expired
from backend.settings import Settings, get_settings
from tenants.access import ROLE_GRANTS, Principal

if TYPE_CHECKING:
    from tenants.scope import TenantScope

log = structlog.get_logger("kravlab.jobs")


def system_principal() -> Principal:
    """Who a job acts as: the system, with the agency_admin's reach over every tenant."""
    return Principal(
        "system", UUID(int=0), None, "agency_admin", grants=ROLE_GRANTS["agency_admin"]
    )


T = TypeVar("T")


async def purge_idempotency_keys_now(settings: Settings) -> int:
    """Delete Idempotency-Key records past their keep time; returns how many went."""
    purged = await purge_expired(settings.idempotency_ttl_hours)
    log.info("purged idempotency records", purged=purged, pool_in_use=pool_in_use(current()))
    return purged


def _in_worker(core: Callable[[Settings], Awaitable[T]]) -> T:
    """Run a job's async core in an RQ worker: its own loop, with a connection pool for the
    job's length (without one every read outside a transaction opens a connection: the
    dunning delivery measured 4.3x slower, bench/dunning.py --no-pool)."""
    settings = get_settings()

    async def pooled() -> T:
        engine = current()
        await open_pool(engine, settings)
        try:
            return await core(settings)
        finally:
            await close_pool(engine)

    return asyncio.run(pooled())


def purge_idempotency_keys() -> int:
    """RQ's entry point of `purge_idempotency_keys_now`."""
    return _in_worker(purge_idempotency_keys_now)


async def run_dunning_now(settings: Settings) -> int:
    """Today's dunning run of every active tenant; returns the contacts recorded. Each
    tenant's `book_months` rows are folded after its run (`book_months.compact`).

    A run is idempotent for its date, so this runs more often than daily (a restarted server
    or worker never misses a day, and invoices that came due since get their step); one
    tenant's failure is logged and does not stop the others.
    """
    from datetime import UTC, datetime

    from backend import book_months
    from backend.api.dunning import channels_for
    from backend.dunning import run
    from tenants.scope import TenantScope
    from tenants.tables import Tenant

    system = system_principal()
    today = datetime.now(UTC).date()
    recorded = 0
    for row in await Tenant.select(Tenant.id).where(Tenant.status == "active"):
        try:
            scope = await TenantScope.open(row["id"], system)
        except Exception:
            log.exception("opening the tenant failed", tenant=str(row["id"]))
            continue
        try:
            recorded += (await run(scope, today, channels_for(settings))).recorded
        except Exception:
            log.exception("dunning run failed", tenant=str(row["id"]))
        # the day's appended monthly rows folded into one per month and measure, whether or
        # not the run went through (a tenant whose runs fail would pile them up otherwise)
        try:
            await book_months.compact(scope)
        except Exception:
            log.exception("folding book_months failed", tenant=str(row["id"]))
    log.info("dunning runs done", recorded=recorded, run_date=today.isoformat())
    return recorded


def run_dunning() -> int:
    """RQ's entry point of `run_dunning_now`."""
    return _in_worker(run_dunning_now)


async def render_letters_now(settings: Settings, tenant_id: str, run_date: str) -> int:
    """Render and store a tenant's waiting letters (queued by its dunning run); returns how
    many were made. Letters are claimed one at a time, so two of these never render one
    letter twice and a killed worker leaves at most one waiting for its claim to lapse."""
    from datetime import date

    from backend.dunning import deliver_letters
    from tenants.scope import TenantScope

    system = system_principal()
    scope = await TenantScope.open(UUID(tenant_id), system)
    counts = await deliver_letters(scope, date.fromisoformat(run_date))
    log.info("letters rendered", tenant=tenant_id, **counts)
    return counts.get("sent", 0)


def render_letters(tenant_id: str, run_date: str) -> int:
    """RQ's entry point of `render_letters_now`."""
    return _in_worker(lambda settings: render_letters_now(settings, tenant_id, run_date))


async def sweep_files_now(settings: Settings) -> int:
    """Remove var_dir folders of tenants and imports that are gone (`offboarding.sweep`)."""
    from backend import offboarding

    return len(await offboarding.sweep(settings, system_principal()))


def sweep_files() -> int:
    """RQ's entry point of `sweep_files_now`."""
    return _in_worker(sweep_files_now)


async def deliver_webhooks_now(settings: Settings) -> int:
    """One delivery pass over every active tenant's due webhook deliveries; returns how many
    were delivered. Attempts are claimed, so two workers never send one attempt twice."""

    from backend import webhooks
    from tenants.scope import TenantScope
    from tenants.tables import Tenant

    system = system_principal()
    delivered = 0
    for row in await Tenant.select(Tenant.id).where(Tenant.status == "active"):
        try:
            scope = await TenantScope.open(row["id"], system)
            counts = await webhooks.deliver(scope, request_timeout=settings.channel_timeout_seconds)
        except Exception:
            log.exception("webhook delivery failed", tenant=str(row["id"]))
            continue
        delivered += counts.get("delivered", 0)
    if delivered:
        log.info("webhooks delivered", delivered=delivered)
    return delivered


def deliver_webhooks() -> int:
    """RQ's entry point of `deliver_webhooks_now`."""
    return _in_worker(deliver_webhooks_now)


async def _tenant_scope(tenant_id: str) -> TenantScope:
    """The scope a job works a tenant's rows in: the system acting for the agency."""

    from tenants.scope import TenantScope

    system = system_principal()
    return await TenantScope.open(UUID(tenant_id), system)


async def fit_model_now(settings: Settings, tenant_id: str, model_id: str) -> None:
    """Fit a tenant's behaviour model under its row (`POST /model`, or a refit)."""

    from backend import tenant_model

    scope = await _tenant_scope(tenant_id)
    try:
        await tenant_model.fit_now(scope, settings, UUID(model_id))
    except tenant_model.FitTaken:  # a simulation took the queued fit over: nothing left to do
        log.info("fit already taken", tenant=tenant_id, model=model_id)


def fit_model(tenant_id: str, model_id: str) -> None:
    """RQ's entry point of `fit_model_now`."""
    _in_worker(lambda settings: fit_model_now(settings, tenant_id, model_id))


async def run_simulation_now(settings: Settings, tenant_id: str, simulation_id: str) -> str:
    """Forecast one queued simulation; returns its final status."""

    from backend import simulations

    scope = await _tenant_scope(tenant_id)
    return await simulations.run_now(scope, settings, UUID(simulation_id))


def run_simulation(tenant_id: str, simulation_id: str) -> str:
    """RQ's entry point of `run_simulation_now`."""
    return _in_worker(lambda settings: run_simulation_now(settings, tenant_id, simulation_id))


async def combine_portfolio_now(settings: Settings, run_id: str) -> str:
    """Combine a portfolio simulation's parts (running them first when in-process)."""

    from backend import portfolio

    system = system_principal()
    return await portfolio.combine_now(settings, UUID(run_id), system)


def combine_portfolio(run_id: str) -> str:
    """RQ's entry point of `combine_portfolio_now`."""
    return _in_worker(lambda settings: combine_portfolio_now(settings, run_id))


async def load_import_now(settings: Settings, tenant_id: str, import_id: str) -> str:
    """Load one uploaded history into its tenant's book (`backend.imports.load`), all or
    nothing; returns the import's final status. Idempotent: a finished import is left as it
    is, one left `running` by a killed worker starts again from its files."""

    from backend import imports
    from tenants.scope import TenantScope

    system = system_principal()
    scope = await TenantScope.open(UUID(tenant_id), system)
    return await imports.load(scope, UUID(import_id), settings.var_dir)


def load_import(tenant_id: str, import_id: str) -> str:
    """RQ's entry point of `load_import_now`."""
    from functools import partial

    return _in_worker(partial(load_import_now, tenant_id=tenant_id, import_id=import_id))
