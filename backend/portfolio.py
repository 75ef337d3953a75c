"""A portfolio simulation: every client's live policies forecast at once, combined.

The agency asks what its portfolio will bring in: each tenant's book under its own live
policy set. The work fans out as one simulation per tenant (each an RQ job that any worker
may take, reading only that tenant's rows), and a dependent job combines their forecasts
when all have ended: per currency, amounts summed and recovery weighted by the cohorts'
amounts. Tenants whose simulation failed are listed with the reason, never silently left
out of a total. Without Redis the same steps run one after another on the server's loop.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import structlog
from litestar.exceptions import ClientException, NotFoundException

from backend import simulations
from backend.settings import Settings
from backend.tables import PortfolioRun, Simulation
from backend.validation import FieldError, InvalidInput
from tenants import clock
from tenants.access import Principal
from tenants.scope import AgencyScope
from tenants.tables import Tenant
from tenants.transactions import write_transaction

log = structlog.get_logger("kravlab.portfolio")

# The longest tenant list a request may carry (KRAVLAB_MAX_PORTFOLIO_TENANTS bounds a run).
MAX_TENANTS = 500
ENDED = ("done", "partial", "failed", "cancelled")


def combine_job_id(run_id: UUID) -> str:
    """The RQ job id of a run's combining job, so a look at Redis can tell it was lost."""
    return f"portfolio-{run_id}"


class PortfolioConflict(ClientException):
    """A tenant's part cannot be created, or the run has ended (409)."""

    status_code = 409


async def create(
    agency: AgencyScope, settings: Settings, tenant_ids: list[UUID] | None, horizon: int
) -> dict[str, Any]:
    """Queue one simulation per tenant and the job that combines them."""
    from backend import queue
    from backend.jobs import combine_portfolio, run_simulation

    active = [
        row["id"]
        for row in await Tenant.select(Tenant.id)
        .where(Tenant.status == "active")
        .order_by(Tenant.created_at)
    ]
    chosen = active if tenant_ids is None else [t for t in active if t in set(tenant_ids)]
    # A tenant named in the body that is not there (or not active) is bad input with its path.
    unknown = [
        FieldError(f"tenant_ids[{i}]", "no active tenant with this id")
        for i, tenant_id in enumerate(tenant_ids or [])
        if tenant_id not in set(active)
    ]
    if unknown:
        raise InvalidInput(unknown)
    if len(chosen) > settings.max_portfolio_tenants:
        raise InvalidInput(
            [
                FieldError(
                    "tenant_ids",
                    f"{len(chosen)} tenants, at most {settings.max_portfolio_tenants} in one run "
                    "(KRAVLAB_MAX_PORTFOLIO_TENANTS): name them in several runs",
                )
            ]
        )
    run_id = uuid4()
    parts: list[tuple[UUID, UUID]] = []
    scopes = []
    # All or nothing: the run and every tenant's part are written together, or not at all.
    async with write_transaction():
        await PortfolioRun.insert(
            PortfolioRun(
                id=run_id,
                status="queued",
                request=json.dumps({"tenants": [str(t) for t in chosen], "horizon_days": horizon}),
                created_by=agency.principal.actor,
                created_at=clock.now(),
            )
        )
        for tenant_id in chosen:
            scope = await agency.tenant(tenant_id)
            scopes.append(scope)
            try:
                row, _ = await simulations.create(
                    scope,
                    settings,
                    {"candidates": {}, "horizon_days": horizon},
                    portfolio=run_id,
                    enqueue=False,
                )
            except (InvalidInput, ValueError, KeyError, TypeError) as exc:
                reason = (
                    "; ".join(f"{e.path}: {e.message}" for e in exc.errors)
                    if isinstance(exc, InvalidInput)
                    else f"{type(exc).__name__}: {exc}"
                )
                log.warning("portfolio part refused", tenant=str(tenant_id), reason=reason)
                raise PortfolioConflict(
                    f"tenant {tenant_id}: its part cannot be created ({reason[:300]}); "
                    "nothing was queued"
                ) from exc
            parts.append((tenant_id, row["id"]))
    try:
        if settings.redis_url:
            jobs = [
                queue.enqueue(
                    settings,
                    run_simulation,
                    str(tenant_id),
                    str(simulation_id),
                    job_id=simulations.simulation_job_id(simulation_id),
                    timeout=simulations.JOB_TIMEOUT_SECONDS,
                )
                for tenant_id, simulation_id in parts
            ]
            queue.enqueue(
                settings,
                combine_portfolio,
                str(run_id),
                job_id=combine_job_id(run_id),
                depends_on=[j for j in jobs if j],
            )
        else:
            queue.enqueue(settings, combine_portfolio, str(run_id))
    except queue.QueueUnavailable:
        async with write_transaction():
            for scope in scopes:
                await scope.delete(Simulation).where(Simulation.portfolio == run_id)
            await PortfolioRun.delete().where(PortfolioRun.id == run_id)
        raise
    return await get(run_id, settings)


async def _settle_parts(agency: AgencyScope, run_id: UUID, why: str) -> int:
    """End the run's parts that have not ended (queued or running) as cancelled, so an
    abandoned run leaves no part waiting for a worker; returns how many."""
    rows = await agency.select(Simulation, Simulation.id, Simulation.tenant).where(
        (Simulation.portfolio == run_id) & Simulation.status.is_in(["queued", "running"])
    )
    for row in rows:
        scope = await agency.tenant(row["tenant"])
        await scope.update(
            Simulation,
            {
                Simulation.status: "cancelled",
                Simulation.error: why,
                Simulation.finished_at: clock.now(),
            },
        ).where((Simulation.id == row["id"]) & Simulation.status.is_in(["queued", "running"]))
    return len(rows)


async def cancel(agency: AgencyScope, settings: Settings, run_id: UUID) -> dict[str, Any]:
    """Cancel a run that has not ended: the run and its unfinished parts are cancelled (a
    part's job that starts later finds it so and does nothing)."""
    ended = (
        await PortfolioRun.update(
            {PortfolioRun.status: "cancelled", PortfolioRun.finished_at: clock.now()}
        )
        .where((PortfolioRun.id == run_id) & PortfolioRun.status.is_in(["queued", "running"]))
        .returning(PortfolioRun.id)
    )
    if not ended:
        run = await get(run_id, settings)  # 404 when there is none
        raise PortfolioConflict(f"the portfolio simulation is {run['status']}: nothing to cancel")
    await _settle_parts(agency, run_id, "the portfolio simulation was cancelled")
    log.info("portfolio simulation cancelled", run=str(run_id), by=agency.principal.actor)
    return await get(run_id, settings)


async def get(run_id: UUID, settings: Settings) -> dict[str, Any]:
    row = await PortfolioRun.select().where(PortfolioRun.id == run_id).first()
    if row is None:
        raise NotFoundException("portfolio simulation not found")
    if row["status"] in ("queued", "running") and await _lost(row, settings):
        row = {
            **row,
            **(await PortfolioRun.select().where(PortfolioRun.id == run_id).first() or {}),
        }
    return {
        "id": row["id"],
        "status": row["status"],
        "created_at": row["created_at"],
        "created_by": row["created_by"],
        "finished_at": row["finished_at"],
        "error": row["error"],
        "tenants": json.loads(row["request"])["tenants"],
        "result": json.loads(row["result"]) if row["result"] else None,
    }


async def _lost(row: dict[str, Any], settings: Settings) -> bool:
    """A run not ended whose combining job Redis no longer holds (lost when it restarted,
    or dead) would show queued or running for good: it failed, and its unfinished parts
    with it. Not judged within KRAVLAB_JOB_STALE_SECONDS of its creation (its job is
    enqueued just after the run is written)."""
    from backend import queue

    if row["created_at"] > clock.now() - timedelta(seconds=settings.job_stale_seconds):
        return False
    if not await queue.lost_jobs(settings, [combine_job_id(row["id"])]):
        return False
    failed = (
        await PortfolioRun.update(
            {
                PortfolioRun.status: "failed",
                PortfolioRun.error: "its combining job was lost from the queue (Redis "
                "restarted) or died; run it again",
                PortfolioRun.finished_at: clock.now(),
            }
        )
        .where((PortfolioRun.id == row["id"]) & PortfolioRun.status.is_in(["queued", "running"]))
        .returning(PortfolioRun.id)
    )
    if failed:
        from backend.jobs import system_principal

        agency = AgencyScope.open(system_principal())
        await _settle_parts(agency, row["id"], "the portfolio simulation's combining job was lost")
        log.warning("portfolio combining job lost", run=str(row["id"]))
    return True


def combine(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Per currency: cohorts and money summed, recovery weighted by the cohorts' amounts."""
    by_currency: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for part in parts:
        if part["result"] is not None:
            by_currency[part["result"]["cohort"]["currency"]].append(part["result"])
    totals: dict[str, Any] = {}
    for currency, results in by_currency.items():
        amount = sum(r["cohort"]["amount"] for r in results)
        lives = [r["results"]["live"] for r in results]
        weights = [r["cohort"]["amount"] / amount if amount else 0.0 for r in results]
        days = [row[0] for row in lives[0]["cash_curve"]]
        totals[currency] = {
            "tenants": len(results),
            "invoices": sum(r["cohort"]["invoices"] for r in results),
            "amount": amount,
            "recovery": {
                d: sum(w * live["recovery"][d] for w, live in zip(weights, lives, strict=True))
                for d in lives[0]["recovery"]
            },
            "cash_curve": [
                [
                    day,
                    *(
                        sum(
                            w * live["cash_curve"][i][k]
                            for w, live in zip(weights, lives, strict=True)
                        )
                        for k in (1, 2, 3)
                    ),
                ]
                for i, day in enumerate(days)
            ],
            "fee_income": sum(live["fee_income"] for live in lives),
            "interest_income": sum(live["interest_income"] for live in lives),
            "channel_cost": sum(live["channel_cost"] for live in lives),
            "escalations": sum(live["escalations"]["count"] for live in lives),
        }
    return {
        "currencies": totals,
        # Summed bands are wider than the portfolio's own (the tenants' errors are not all
        # alike): a conservative band, said so.
        "bands": "amount-weighted averages of the tenants' 90 % bands (conservative)",
        "tenants": [
            {
                "tenant_id": part["tenant_id"],
                "simulation_id": str(part["id"]),
                "status": part["status"],
                "error": part["error"],
                "recovery": part["result"]["results"]["live"]["recovery"]
                if part["result"]
                else None,
            }
            for part in parts
        ],
    }


async def combine_now(settings: Settings, run_id: UUID, system: Principal) -> str:
    """The dependent job: run what has not run (in-process), then combine. A failure here
    shows the run failed, never running forever."""
    agency = AgencyScope.open(system)
    started = (
        await PortfolioRun.update({PortfolioRun.status: "running"})
        .where((PortfolioRun.id == run_id) & (PortfolioRun.status == "queued"))
        .returning(PortfolioRun.id)
    )
    if not started:  # cancelled (or gone) before it could run: its parts are settled
        await _settle_parts(agency, run_id, "the portfolio simulation was cancelled")
        return "cancelled"
    try:
        rows = await agency.select(Simulation, Simulation.id, Simulation.tenant).where(
            Simulation.portfolio == run_id
        )
        run = await PortfolioRun.select(PortfolioRun.request).where(PortfolioRun.id == run_id)
        order = {t: i for i, t in enumerate(json.loads(run[0]["request"])["tenants"])}
        rows.sort(key=lambda row: order.get(str(row["tenant"]), len(order)))  # as asked
        parts = []
        for row in rows:
            scope = await agency.tenant(row["tenant"])
            if not settings.redis_url:
                await simulations.run_now(scope, settings, row["id"])
            found = await simulations.get(scope, settings, row["id"])
            parts.append({**found, "tenant_id": str(row["tenant"])})
        result = combine(parts)
    except Exception as exc:
        await PortfolioRun.update(
            {
                PortfolioRun.status: "failed",
                PortfolioRun.error: f"combining failed: {type(exc).__name__}",
                PortfolioRun.finished_at: clock.now(),
            }
        ).where(PortfolioRun.id == run_id)
        await _settle_parts(agency, run_id, "the portfolio simulation failed")
        raise
    status = "done" if all(p["status"] == "done" for p in parts) else "partial"
    combined = (
        await PortfolioRun.update(
            {
                PortfolioRun.status: status,
                PortfolioRun.result: json.dumps(result),
                PortfolioRun.finished_at: clock.now(),
            }
        )
        .where((PortfolioRun.id == run_id) & (PortfolioRun.status == "running"))
        .returning(PortfolioRun.id)
    )
    if not combined:  # cancelled while its parts ran
        return "cancelled"
    log.info("portfolio simulation combined", run=str(run_id), tenants=len(parts), status=status)
    return status
