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
from backend.tables import Invoice, TenantModel
from simulator.backtest import CALIBRATION_HORIZON, rolling, split_days
from simulator.backtest import summary as stored_summary
from simulator.fit import Fit, fit_history
from simulator.history import History, day_date
from simulator.saved_model import ModelFileError, load_model, save_model
from tenants import clock
from tenants.scope import AgencyScope, TenantScope
from tenants.transactions import write_transaction

log = structlog.get_logger("kravlab.model")

# Refit once the book holds this share more invoices than the model saw, or the fit is this old.
REFIT_GROWTH = 0.10
REFIT_AFTER_DAYS = 30
# A running job writes its heartbeat this often; one silent for KRAVLAB_JOB_STALE_SECONDS
# is dead.
HEARTBEAT_SECONDS = 5.0
# A simulation waiting for another job's fit looks at it this often.
FIT_POLL_SECONDS = 1.0
# Rolling-origin backtest of the stored model: this many splits, this horizon (days).
BACKTEST_SPLITS = 2
BACKTEST_HORIZON = CALIBRATION_HORIZON
# RQ stops a fit after this long (a 1 000 000-invoice book fits in minutes).
JOB_TIMEOUT_SECONDS = 3600


class NoModel(NotFoundException):
    """The tenant has no fitted model yet."""


class FitTaken(NoModel):
    """The fit's row is finished, gone, or being fitted by another job."""


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
# A pooled estimate needs this many clients whose own data identified the parameter: with
# two, one client is half the pool and a median is no better than a mean.
POOL_MIN_TENANTS = 3
# A client's standard error below this counts as this: no client outweighs the others by
# claiming a certainty (se 1e-9) that no book of invoices gives.
POOL_SE_FLOOR = 0.05
# A contact effect beyond this on the logit scale (odds times e^10) is a broken fit, not a
# finding: left out like a non-finite one.
POOL_ESTIMATE_BOUND = 10.0
# Estimates are winsorised to the median plus or minus this many robust spreads (MAD scaled
# to a standard deviation), and no client's weight exceeds this multiple of the median one.
POOL_WINSOR_SPREADS = 2.5
POOL_WEIGHT_CAP = 2.0


def _number(value: Any) -> float | None:
    """A finite float, or None for anything else (a string, a bool, NaN, an infinity)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if np.isfinite(number) else None


def _contributions(summaries: list[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """Each pooled parameter's (estimate, floored se) per client whose data identified it;
    one value per client, and nothing that is not a finite number in a sane range."""
    found: dict[str, list[tuple[float, float]]] = {}
    for summary in summaries:
        seen: set[str] = set()
        rows = summary.get("parameters") if isinstance(summary, dict) else None
        for row in rows if isinstance(rows, list) else []:
            if not isinstance(row, dict) or row.get("source") != "data":
                continue
            name = row.get("name")
            if not isinstance(name, str) or not name.startswith(POOLED) or name in seen:
                continue
            estimate, se = _number(row.get("estimate")), _number(row.get("se"))
            if estimate is None or se is None or se <= 0 or abs(estimate) > POOL_ESTIMATE_BOUND:
                continue
            seen.add(name)
            found.setdefault(name, []).append((estimate, max(se, POOL_SE_FLOOR)))
    return found


def pool(summaries: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """The agency's prior for each pooled parameter from other tenants' fitted models
    (parameters only: estimates and standard errors, never a row).

    A robust precision-weighted mean: estimates winsorised around their median, each
    client's weight 1/se² with se floored and the weight capped at a multiple of the median
    weight, so one client's extreme or overconfident estimate moves the prior a bounded
    amount. The spread adds how much the clients differ from each other to the mean's own
    uncertainty, and is never below the se floor.
    """
    pooled = {}
    for name, values in _contributions(summaries).items():
        if len(values) < POOL_MIN_TENANTS:
            continue
        estimates = np.array([v[0] for v in values])
        centre = float(np.median(estimates))
        spread = max(1.4826 * float(np.median(np.abs(estimates - centre))), POOL_SE_FLOOR)
        reach = POOL_WINSOR_SPREADS * spread
        kept = np.clip(estimates, centre - reach, centre + reach)
        weights = 1.0 / np.array([v[1] for v in values]) ** 2
        weights = np.minimum(weights, POOL_WEIGHT_CAP * float(np.median(weights)))
        mean = float((kept * weights).sum() / weights.sum())
        between = float(kept.var(ddof=1))
        sd = max(float(np.sqrt(between + 1.0 / weights.sum())), POOL_SE_FLOOR)
        pooled[name] = (mean, sd)
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


def fit_job_id(model_id: UUID | str) -> str:
    """The RQ job id of the fit under row `model_id`: what a simulation waits for."""
    return f"fit-{model_id}"


async def _pending_or_new(scope: TenantScope) -> tuple[dict[str, Any], bool]:
    """The tenant's queued or running fit, or a new queued row: one at a time, under the
    tenant's lock (two requests at once must not both start a fit). Returns the row and
    whether it is new."""
    async with write_transaction():
        await scope.lock("model-fit")
        pending = (
            await scope.select(TenantModel)
            .where(TenantModel.status.is_in(["queued", "running"]))
            .order_by(TenantModel.created_at)
            .first()
        )
        if pending is not None:
            return pending, False
        model_id = uuid4()
        await scope.insert(
            TenantModel, {"id": model_id, "status": "queued", "created_at": clock.now()}
        )
    return await scope.get(TenantModel, model_id), True


async def request_fit(scope: TenantScope, settings: Settings) -> dict[str, Any]:
    """Queue a fit of the tenant's book (one at a time: a queued or running fit is reused)."""
    from backend import queue
    from backend.jobs import fit_model

    await settle_stale(scope, settings)
    row, new = await _pending_or_new(scope)
    if not new:
        return row
    try:
        queue.enqueue(
            settings,
            fit_model,
            str(scope.tenant_id),
            str(row["id"]),
            job_id=fit_job_id(row["id"]),
            timeout=JOB_TIMEOUT_SECONDS,
        )
    except queue.QueueUnavailable:
        await scope.delete(TenantModel).where(TenantModel.id == row["id"])
        raise
    await scope.audit("model.fit_requested", "model", row["id"])
    return row


async def fit_to_wait_for(scope: TenantScope, settings: Settings) -> str | None:
    """For a simulation about to be queued: the RQ job id of the fit it should wait for (one
    under way, or one queued now because the model is missing or stale), or None when the
    current model will do. Simulations then share one fit instead of each fitting its own."""
    await settle_stale(scope, settings)
    row = await latest(scope)
    if row is not None and row["path"]:
        today = clock.now().date()
        size = await scope.count(Invoice).where(Invoice.issue_date <= today)
        if _stale(row, size) is None:
            return None  # (a file found unreadable at run time is refitted then, once)
    fit = await request_fit(scope, settings)
    return fit_job_id(fit["id"])


async def settle_stale(scope: TenantScope, settings: Settings) -> None:
    """A running fit whose heartbeat stopped had its worker killed: it failed. So did a queued
    one older than KRAVLAB_JOB_STALE_SECONDS whose job Redis no longer holds (lost in a
    restart): simulations would otherwise wait for it, and reuse it, for ever."""
    from backend import queue

    await queue.fail_lost_queued(
        scope,
        settings,
        TenantModel,
        fit_job_id,
        {
            TenantModel.status: "failed",
            TenantModel.error: "its job was lost from the queue (Redis restarted) or died before it "
            "started",
        },
    )
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
    # Queued, or running with a heartbeat gone silent (its worker died): a fit another job is
    # working on is not started twice.
    cutoff = clock.now() - timedelta(seconds=settings.job_stale_seconds)
    claimed = (
        await scope.update(
            TenantModel,
            {TenantModel.status: "running", TenantModel.heartbeat_at: clock.now()},
        )
        .where(
            (TenantModel.id == model_id)
            & (
                (TenantModel.status == "queued")
                | (
                    (TenantModel.status == "running")
                    & ((TenantModel.heartbeat_at < cutoff) | TenantModel.heartbeat_at.is_null())
                )
            )
        )
        .returning(TenantModel.id)
    )
    if not claimed:
        raise FitTaken("model fit not found, already finished or under way elsewhere")

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
    recorded = await (
        scope.update(
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
        )
        .where(TenantModel.id == model_id)
        .returning(TenantModel.id)
    )
    if not recorded:  # the tenant was offboarded while it fitted: its file goes too
        await asyncio.to_thread(path.unlink, missing_ok=True)
        raise FitTaken("the tenant's model row is gone (offboarded)")
    log.info("model fitted", tenant=str(scope.tenant_id), invoices=model.invoices)
    await prune(scope, settings)
    return model, await scope.get(TenantModel, model_id)


async def prune(scope: TenantScope, settings: Settings) -> list[Path]:
    """Delete the tenant's model files but the newest KRAVLAB_MODELS_KEPT finished ones
    (the current model and a few previous, for a look back): every fit wrote one, and none
    was ever removed. The rows stay, with their summaries (the pooled prior reads those),
    their path cleared; a file no row names (a fit that died after writing it) goes too,
    unless its fit is still under way. Returns the files removed."""
    rows = await scope.select(
        TenantModel, TenantModel.id, TenantModel.status, TenantModel.path, TenantModel.fitted_at
    )
    done = sorted(
        (r for r in rows if r["status"] == "done" and r["path"]),
        key=lambda r: clock.aware(r["fitted_at"]),
        reverse=True,
    )
    kept = {str(r["id"]) for r in done[: settings.models_kept]}
    busy = {str(r["id"]) for r in rows if r["status"] in ("queued", "running")}
    old = [r for r in rows if r["path"] and str(r["id"]) not in kept | busy]
    if old:
        await scope.update(TenantModel, {TenantModel.path: None}).where(
            TenantModel.id.is_in([r["id"] for r in old])
        )
    folder = model_dir(settings, scope.tenant_id)

    def remove() -> list[Path]:
        gone = []
        for path in folder.glob("*.npz") if folder.is_dir() else []:
            if path.stem not in kept | busy:
                path.unlink(missing_ok=True)
                gone.append(path)
        return gone

    removed = await asyncio.to_thread(remove)
    if removed:
        log.info("old model files removed", tenant=str(scope.tenant_id), files=len(removed))
    return removed


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


def _stale(row: dict[str, Any], size: int) -> str | None:
    """Why the model of `row` should be refitted for a book of `size` invoices, or None."""
    if row["invoices"] and size > row["invoices"] * (1 + REFIT_GROWTH):
        return f"the book grew from {row['invoices']:,} to {size:,} invoices"
    fitted = clock.aware(row["fitted_at"])
    if clock.now() - fitted > timedelta(days=REFIT_AFTER_DAYS):
        return f"the model is older than {REFIT_AFTER_DAYS} days"
    return None


def _load(path: str, history: History) -> Fit:
    model = load_model(path, history)
    if not np.all(np.isfinite(model.params)):
        raise ModelFileError(f"{path}: parameters are not finite")
    return model


class _Pruned(Exception):
    """The file went while it was being read: a newer model pruned it (KRAVLAB_MODELS_KEPT)."""


async def _usable(scope: TenantScope, row: dict[str, Any] | None, history: History) -> Fit | None:
    """The model of a finished fit's row, or None when there is none or it cannot be read
    (the row is then marked failed: a model that cannot be read is refitted, never served).
    _Pruned when its file was removed by `prune` after the row was read: nothing is wrong
    with it, a newer model took its place."""
    if row is None or row["status"] != "done" or not row["path"]:
        return None
    try:
        return await asyncio.to_thread(_load, row["path"], history)
    except (ModelFileError, OSError) as exc:
        now = await scope.select(TenantModel, TenantModel.path).where(TenantModel.id == row["id"])
        if not now or now[0]["path"] != row["path"]:
            log.info("model file pruned while being read", path=row["path"])
            raise _Pruned(row["path"]) from exc
        log.warning("model file unreadable, refitting", path=row["path"], error=str(exc))
        await scope.update(
            TenantModel,
            {TenantModel.status: "failed", TenantModel.error: f"unreadable: {exc}"[:500]},
        ).where(TenantModel.id == row["id"])
        return None


async def for_history(
    scope: TenantScope, settings: Settings, history: History
) -> tuple[Fit, dict[str, Any]]:
    """The model a simulation of `history` stands on: the stored one while it is current and
    readable; else the fit under way (waited for while its heartbeat lives, or taken over
    while it is still queued), else a fresh fit of its own (recorded like any other).
    However many simulations need a model at once, one fit runs."""
    found = await _current(scope, history)
    if found is not None:
        return found
    while True:
        await settle_stale(scope, settings)
        pending, new = await _pending_or_new(scope)
        if new or pending["status"] == "queued":
            try:
                return await fit_now(scope, settings, pending["id"], history)
            except FitTaken:
                continue  # another job claimed it first: wait for that one instead
        await _wait_for(scope, settings, pending["id"])
        done = await scope.select(TenantModel).where(TenantModel.id == pending["id"]).first()
        try:
            model = await _usable(scope, done, history)
        except _Pruned:  # a still newer fit ended meanwhile: serve that one
            found = await _current(scope, history)
            if found is not None:
                return found
            continue
        if model is not None and done is not None:
            return model, done
        # the fit waited for failed: the next turn fits anew (one of the waiters does)


async def _current(scope: TenantScope, history: History) -> tuple[Fit, dict[str, Any]] | None:
    """The newest finished model while it is current and readable. A model pruned while
    being read was replaced by a newer one, which is looked at instead (a few times at
    most: fits do not finish that fast)."""
    for _ in range(3):
        row = await latest(scope)
        if row is None or _stale(row, history.size) is not None:
            return None
        try:
            model = await _usable(scope, row, history)
        except _Pruned:
            continue
        return (model, row) if model is not None else None
    return None


async def _wait_for(scope: TenantScope, settings: Settings, model_id: UUID) -> None:
    """Until the fit of `model_id` has ended (`settle_stale` ends one whose worker died)."""
    while True:
        row = (
            await scope.select(TenantModel, TenantModel.status)
            .where(TenantModel.id == model_id)
            .first()
        )
        if row is None or row["status"] not in ("queued", "running"):
            return
        await asyncio.sleep(FIT_POLL_SECONDS)
        await settle_stale(scope, settings)
