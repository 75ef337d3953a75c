"""A payment-behaviour model per tenant: fitted in a job, kept as a saved-model file.

The model is what every simulation of the tenant stands on, so it is fitted once and kept
(formats §5, under `var/models/<tenant>/<id>.npz`) with its backtest, the parameters that
are priors, and the fingerprint of the data it saw. It is refitted when the book has
changed enough (`REFIT_GROWTH` more invoices, or `REFIT_AFTER_DAYS` since the fit), on
demand (`POST /model`), and whenever its file cannot be read: a model that cannot be read
is refitted, never served.

A fit whose worker died leaves a `running` row with a heartbeat that stopped; after
`KRAVLAB_JOB_STALE_SECONDS` it reads as failed (`settle_stale`), so nothing stays running forever.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import numpy as np
import structlog
from litestar.exceptions import NotFoundException

from backend.extract import cached_history
from backend.settings import Settings
from backend.tables import TenantModel
from simulator.backtest import CALIBRATION_HORIZON, rolling, split_days
from simulator.backtest import summary as stored_summary
from simulator.fit import Fit, fit_history
from simulator.history import History, day_date
from simulator.saved_model import ModelFileError, load_model, save_model
from tenants import clock
from tenants.scope import AgencyScope, TenantScope

log = structlog.get_logger("kravlab.model")

# Refit once the book holds this share more invoices than the model saw, or the fit is this old.
REFIT_GROWTH = 0.10
REFIT_AFTER_DAYS = 30
# A running job writes its heartbeat this often; one silent for KRAVLAB_JOB_STALE_SECONDS
# is dead.
HEARTBEAT_SECONDS = 5.0
# Rolling-origin backtest of the stored model: this many splits, this horizon (days).
BACKTEST_SPLITS = 2
BACKTEST_HORIZON = CALIBRATION_HORIZON
# RQ stops a fit after this long (a 1 000 000-invoice book fits in minutes).
JOB_TIMEOUT_SECONDS = 3600


class NoModel(NotFoundException):
    """The tenant has no fitted model yet."""


def model_dir(settings: Settings, tenant_id: UUID) -> Path:
    return settings.var_dir / "models" / str(tenant_id)


@asynccontextmanager
async def heartbeat(beat: Callable[[], Awaitable[Any]], settings: Settings) -> Any:
    """Call `beat` while the block runs (its work off the loop), often enough that a live
    job never looks stale: every HEARTBEAT_SECONDS, or a quarter of the stale time."""
    every = min(HEARTBEAT_SECONDS, settings.job_stale_seconds / 4)

    async def loop() -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await beat()
            except Exception:  # a missed beat is not the job's failure
                log.warning("heartbeat not written", exc_info=True)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()


def backtest_summary(report: dict[str, Any]) -> dict[str, Any]:
    """What a user judges a model by: its error, its coverage and its skill against the
    naive forecasts a finance team would make, over the rolling splits."""
    mean = report.get("mean") or report
    return {
        "splits": [block["split"] for block in report.get("splits", [report])],
        "horizon_days": report.get("horizon_days", BACKTEST_HORIZON),
        "mae_pp": mean["mae_pp"],
        "max_abs_pp": report.get("max_abs_pp"),
        "coverage": mean["coverage"],
        "skill": mean["skill"],
        "baselines": {name: b["mae_pp"] for name, b in mean["baselines"].items()},
        "beats_naive": bool(mean["skill"] > 0),
        "warnings": report.get("warnings", []),
    }


# Effects the agency pools across its clients for a client whose history cannot identify
# them (a channel it never used, a fee it never charged): the contact effects, which mean
# the same thing in every book. Levels and covariates stay each client's own.
POOLED = ("bump[", "later_contact[", "fee_charged", "collection_notice")
# A pooled estimate needs this many clients whose own data identified the parameter.
POOL_MIN_TENANTS = 2


def pool(summaries: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """The agency's prior for each pooled parameter from other tenants' fitted models
    (parameters only: estimates and standard errors, never a row): the precision-weighted
    mean, with a spread that adds how much the clients differ from each other."""
    found: dict[str, list[tuple[float, float]]] = {}
    for summary in summaries:
        for row in summary.get("parameters", []):
            if row["source"] == "data" and row["name"].startswith(POOLED) and row["se"] > 0:
                found.setdefault(row["name"], []).append((row["estimate"], row["se"]))
    pooled = {}
    for name, values in found.items():
        if len(values) < POOL_MIN_TENANTS:
            continue
        estimates = np.array([v[0] for v in values])
        precision = 1.0 / np.array([v[1] for v in values]) ** 2
        mean = float((estimates * precision).sum() / precision.sum())
        between = float(estimates.var(ddof=1))
        pooled[name] = (mean, float(np.sqrt(between + 1.0 / precision.sum())))
    return pooled


async def pooled_prior(scope: TenantScope) -> dict[str, tuple[float, float]]:
    """The pooled prior from every other tenant's newest model; empty for a caller that is
    not the agency (a tenant's own credential never reaches other tenants' models)."""
    if scope.principal.tenant_id is not None:
        return {}
    rows = (
        await AgencyScope.open(scope.principal)
        .select(TenantModel, TenantModel.tenant, TenantModel.summary, TenantModel.fitted_at)
        .where((TenantModel.status == "done") & (TenantModel.tenant != scope.tenant_id))
    )
    newest: dict[Any, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: clock.aware(r["fitted_at"])):
        newest[row["tenant"]] = row
    return pool([json.loads(row["summary"]) for row in newest.values()])


def fit_with_backtest(
    history: History, prior_override: dict[str, tuple[float, float]] | None = None
) -> tuple[Fit, dict[str, Any] | None]:
    """The model of the whole history, and its rolling backtest (None when the history is
    too short for one: the summary then says so, never invents an accuracy)."""
    model = fit_history(history, prior_override=prior_override)
    try:
        splits = split_days(history, None, BACKTEST_SPLITS, BACKTEST_HORIZON)
        report = rolling(history, splits, BACKTEST_HORIZON)
    except ValueError as exc:
        model.warnings.append(f"no backtest: {exc}")
        return model, None
    summary = backtest_summary(report)
    # The file keeps the simulator's own summary, calibration included: forecasts from the
    # stored model widen their intervals by the model-form error these splits measured.
    model.backtest = stored_summary(report)
    return model, summary


def summary_of(model: Fit, backtest: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "as_of": day_date(model.as_of).isoformat(),
        "classes": model.layout.classes,
        "class_selection": model.selection,
        "parameters": model.report(),
        "priors": [row["name"] for row in model.report() if row["source"] == "prior"],
        "warnings": model.warnings,
        "convergence": model.convergence,
        "backtest": backtest,
    }


async def request_fit(scope: TenantScope, settings: Settings) -> dict[str, Any]:
    """Queue a fit of the tenant's book (one at a time: a queued or running fit is reused)."""
    from backend import queue
    from backend.jobs import fit_model

    await settle_stale(scope, settings)
    pending = (
        await scope.select(TenantModel)
        .where(TenantModel.status.is_in(["queued", "running"]))
        .first()
    )
    if pending is not None:
        return pending
    model_id = uuid4()
    await scope.insert(TenantModel, {"id": model_id, "status": "queued", "created_at": clock.now()})
    try:
        queue.enqueue(
            settings, fit_model, str(scope.tenant_id), str(model_id), timeout=JOB_TIMEOUT_SECONDS
        )
    except queue.QueueUnavailable:
        await scope.delete(TenantModel).where(TenantModel.id == model_id)
        raise
    await scope.audit("model.fit_requested", "model", model_id)
    return await scope.get(TenantModel, model_id)


async def settle_stale(scope: TenantScope, settings: Settings) -> None:
    """A running fit whose heartbeat stopped had its worker killed: it failed."""
    cutoff = clock.now() - timedelta(seconds=settings.job_stale_seconds)
    await scope.update(
        TenantModel,
        {TenantModel.status: "failed", TenantModel.error: "the worker fitting it stopped"},
    ).where(
        (TenantModel.status == "running")
        & ((TenantModel.heartbeat_at < cutoff) | TenantModel.heartbeat_at.is_null())
        & (TenantModel.created_at < cutoff)
    )


async def fit_now(
    scope: TenantScope, settings: Settings, model_id: UUID, history: History | None = None
) -> tuple[Fit, dict[str, Any]]:
    """Fit the book (or `history`, already extracted from it) under the row `model_id`;
    returns the model and its row. A failure marks the row failed and re-raises."""
    claimed = (
        await scope.update(
            TenantModel,
            {TenantModel.status: "running", TenantModel.heartbeat_at: clock.now()},
        )
        .where((TenantModel.id == model_id) & TenantModel.status.is_in(["queued", "running"]))
        .returning(TenantModel.id)
    )
    if not claimed:
        raise NoModel("model fit not found or already finished")

    async def beat() -> None:
        await scope.update(TenantModel, {TenantModel.heartbeat_at: clock.now()}).where(
            TenantModel.id == model_id
        )

    try:
        async with heartbeat(beat, settings):  # a long read of the book is work too
            if history is None:
                history = await cached_history(scope, settings.var_dir, clock.now().date())
            prior = await pooled_prior(scope)
            model, backtest = await asyncio.to_thread(fit_with_backtest, history, prior)
        folder = model_dir(settings, scope.tenant_id)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{model_id}.npz"
        await asyncio.to_thread(save_model, model, path)
    except Exception as exc:
        await scope.update(
            TenantModel,
            {TenantModel.status: "failed", TenantModel.error: str(exc)[:500]},
        ).where(TenantModel.id == model_id)
        raise
    await scope.update(
        TenantModel,
        {
            TenantModel.status: "done",
            TenantModel.path: str(path),
            TenantModel.fingerprint: model.fingerprint,
            TenantModel.invoices: model.invoices,
            TenantModel.summary: json.dumps(summary_of(model, backtest)),
            TenantModel.fitted_at: clock.now(),
            TenantModel.heartbeat_at: None,
        },
    ).where(TenantModel.id == model_id)
    log.info("model fitted", tenant=str(scope.tenant_id), invoices=model.invoices)
    return model, await scope.get(TenantModel, model_id)


async def latest(scope: TenantScope) -> dict[str, Any] | None:
    """The newest fitted model's row (None before the first fit)."""
    return (
        await scope.select(TenantModel)
        .where(TenantModel.status == "done")
        .order_by(TenantModel.fitted_at, ascending=False)
        .first()
    )


async def describe(scope: TenantScope, settings: Settings) -> dict[str, Any]:
    """`GET /model`: the newest model and whether a fit is under way."""
    await settle_stale(scope, settings)
    row = await latest(scope)
    pending = (
        await scope.select(TenantModel, TenantModel.id, TenantModel.status)
        .where(TenantModel.status.is_in(["queued", "running"]))
        .first()
    )
    if row is None:
        raise NoModel(
            "no model fitted yet: POST /model fits one (a simulation fits one when needed)"
        )
    return {
        "id": row["id"],
        "fitted_at": row["fitted_at"],
        "invoices": row["invoices"],
        "fingerprint": row["fingerprint"],
        **json.loads(row["summary"]),
        "refit": pending,
    }


def _stale(row: dict[str, Any], history: History) -> str | None:
    """Why the model of `row` should be refitted for `history`, or None."""
    if row["invoices"] and history.size > row["invoices"] * (1 + REFIT_GROWTH):
        return f"the book grew from {row['invoices']:,} to {history.size:,} invoices"
    fitted = clock.aware(row["fitted_at"])
    if clock.now() - fitted > timedelta(days=REFIT_AFTER_DAYS):
        return f"the model is older than {REFIT_AFTER_DAYS} days"
    return None


def _load(path: str, history: History) -> Fit:
    model = load_model(path, history)
    if not np.all(np.isfinite(model.params)):
        raise ModelFileError(f"{path}: parameters are not finite")
    return model


async def for_history(
    scope: TenantScope, settings: Settings, history: History
) -> tuple[Fit, dict[str, Any]]:
    """The model a simulation of `history` stands on: the stored one while it is current and
    readable, else a fresh fit (recorded like any other)."""
    row = await latest(scope)
    if row is not None and row["path"] and _stale(row, history) is None:
        try:
            model = await asyncio.to_thread(_load, row["path"], history)
            return model, row
        except (ModelFileError, OSError) as exc:
            log.warning("model file unreadable, refitting", path=row["path"], error=str(exc))
            await scope.update(
                TenantModel,
                {TenantModel.status: "failed", TenantModel.error: f"unreadable: {exc}"[:500]},
            ).where(TenantModel.id == row["id"])
    model_id = uuid4()
    await scope.insert(TenantModel, {"id": model_id, "status": "queued", "created_at": clock.now()})
    return await fit_now(scope, settings, model_id, history)
