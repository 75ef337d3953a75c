"""What-if simulations of a tenant's policies on its own book, and the go-live gate.

A request names candidates (a policy document, or a stored version `{policy_id, version}`)
and a baseline (`live`: the tenant's live policy set; `actual`: the contact routine its
history shows; or a policy document). A stored version is simulated as it would go live:
the live set with that version in place of the live version of its policy or segment, so
the forecast answers "what changes if I activate this". The request is resolved to policy
documents when it is made, so a later edit of the policies cannot change what a queued job
forecasts, and it is kept with a key of the request and the book's `data_version`: an
identical request on unchanged data answers with the stored simulation instead of a new one.

The job extracts the book (`backend.extract`), takes the tenant's model (fitting one when
there is none or it is stale: `backend.tenant_model`) and runs the simulator's forecast,
writing progress and a heartbeat as it goes; a run whose heartbeat stopped is failed, not
left running. The gate (`activation_gate`) lets a version go live only when a simulation of
exactly that version against the current live set finished on the current data.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import date, timedelta
from typing import Any
from uuid import UUID, uuid4

import structlog
from litestar.exceptions import ClientException, TooManyRequestsException

from backend import policies, tenant_model
from backend.extract import EmptyBook, cached_history, data_version
from backend.policies import Activation, GateRefused, overlaps
from backend.settings import Settings
from backend.tables import PolicyVersion, SimulatedVersion, Simulation
from backend.validation import FieldError, InvalidInput
from simulator.forecast import ACTUAL, Options, default_cohort, forecast
from simulator.history import day_number
from simulator.policy import Policy, PolicyError, parse_policies
from tenants import clock
from tenants.pagination import decode_cursor_as, keyset_page, utc_moment
from tenants.scope import TenantScope
from tenants.transactions import write_transaction

log = structlog.get_logger("kravlab.simulations")

STATUSES = ("queued", "running", "done", "failed", "cancelled")
DRAWS = 100
# RQ stops a job after this long: a first fit of a large book is part of the job.
JOB_TIMEOUT_SECONDS = 3600
MAX_CANDIDATES = 6
# One policy document (a candidate or the baseline) as JSON at most, and the request's body:
# six candidates and a baseline at the document limit, with room for the rest.
MAX_DOCUMENT_BYTES = 64 * 1024
MAX_BODY_BYTES = 512 * 1024
# A cohort spans at most this many days of due dates (three years): a longer one is a typo or
# a request for the whole history, which the default cohort already is.
MAX_COHORT_DAYS = 3 * 366


class SimulationConflict(ClientException):
    status_code = 409


class TooManySimulations(TooManyRequestsException):
    """The tenant has KRAVLAB_MAX_ACTIVE_SIMULATIONS queued or running already (429)."""


# What a refused request is told to wait before trying again: a small book's simulation.
RETRY_AFTER_SECONDS = 30


# (policy id, version number, policy, its document): one live version of the tenant.
Live = tuple[UUID, int, Policy, dict[str, Any]]


async def live_versions(scope: TenantScope) -> list[Live]:
    rows = (
        await scope.select(
            PolicyVersion, PolicyVersion.policy, PolicyVersion.number, PolicyVersion.document
        )
        .where(PolicyVersion.status == "live")
        .order_by(PolicyVersion.policy)
    )
    out = []
    for r in rows:
        document = json.loads(r["document"])
        out.append((r["policy"], r["number"], policies.parse(document, stored=True), document))
    return out


def _refs(live: list[Live]) -> list[list[str | int]]:
    return sorted([str(entry[0]), entry[1]] for entry in live)


def _documents(document: Any) -> list[dict[str, Any]]:
    """A policy document or a set of them ({"policies": [...]}) as a list of documents."""
    if isinstance(document, dict) and "policies" in document:
        return list(document["policies"])
    return [document]


def _parse(document: Any, path: str, stored: bool = False) -> list[Policy]:
    """A request's policy document, bounded in size; a `stored` version is held to the rules
    only (it may predate the bounds, and was checked when it was written)."""
    size = len(json.dumps(document, default=str).encode())
    if not stored and size > MAX_DOCUMENT_BYTES:
        raise InvalidInput(
            [FieldError(path, f"a policy document of at most {MAX_DOCUMENT_BYTES} bytes as JSON")]
        )
    try:
        return parse_policies(document, bounded=not stored)
    except PolicyError as exc:
        raise InvalidInput(
            [FieldError(f"{path}.{where}" if where else path, why) for where, why in exc.violations]
        ) from exc


async def _version(scope: TenantScope, ref: dict[str, Any], path: str) -> dict[str, Any]:
    row = (
        await scope.select(PolicyVersion, PolicyVersion.document, PolicyVersion.status)
        .where(
            (PolicyVersion.policy == ref["policy_id"]) & (PolicyVersion.number == ref["version"])
        )
        .first()
    )
    if row is None:
        raise InvalidInput([FieldError(path, "no such policy version")])
    return row


def _in_place(live: list[Live], policy_id: UUID, policy: Policy, path: str) -> list[Live]:
    """The live set as it would be with `policy` live (what activation does, without doing
    it): the live version of its policy or segment retires; another overlap is refused."""
    kept = [entry for entry in live if entry[0] != policy_id and entry[2].segment != policy.segment]
    clash = next((e for e in kept if overlaps(e[2].segment, policy.segment)), None)
    if clash is not None:
        raise InvalidInput(
            [
                FieldError(
                    path,
                    f"its segment overlaps live version {clash[1]} of policy {clash[0]}: "
                    "it could not go live as it is",
                )
            ]
        )
    return kept


async def resolve(scope: TenantScope, request: dict[str, Any]) -> dict[str, Any]:
    """The request with every policy as documents (what the job will forecast), or
    InvalidInput naming each bad path."""
    cohort = _cohort(request.get("cohort") or {})
    live = await live_versions(scope)
    live_docs = [entry[3] for entry in live]
    baseline = request.get("baseline", "live")
    base: dict[str, Any]
    if baseline == "live":
        base = {"name": "live", "kind": "live", "policies": live_docs}
    elif baseline == ACTUAL:
        base = {"name": ACTUAL, "kind": ACTUAL, "policies": None}
    else:
        _parse(baseline, "baseline")
        base = {"name": "baseline", "kind": "policy", "policies": _documents(baseline)}
    candidates: dict[str, Any] = {}
    errors: list[FieldError] = []
    for name, candidate in request["candidates"].items():
        path = f"candidates.{name}"
        if name == base["name"]:
            errors.append(FieldError(path, f"the baseline is called {name!r}: rename it"))
            continue
        try:
            if isinstance(candidate, dict) and set(candidate) == {"policy_id", "version"}:
                number = candidate["version"]
                # Strictly a version number: true or 1.0 would match version 1 in SQL and then
                # be stored as given, where nothing could read it back.
                if type(number) is not int or not 1 <= number <= 2_147_483_647:
                    errors.append(FieldError(f"{path}.version", "a version number (1 or more)"))
                    continue
                policy_id = UUID(str(candidate["policy_id"]))
                ref = {"policy_id": policy_id, "version": number}
                row = await _version(scope, ref, path)
                document = json.loads(row["document"])
                (policy,) = _parse(document, path, stored=True)
                in_place = _in_place(live, policy_id, policy, path)
                candidates[name] = {
                    "version": {"policy_id": str(policy_id), "version": number},
                    "policies": [*(entry[3] for entry in in_place), document],
                }
            else:
                _parse(candidate, path)
                candidates[name] = {"version": None, "policies": _documents(candidate)}
        except InvalidInput as exc:
            errors += exc.errors
        except ValueError:
            errors.append(FieldError(f"{path}.policy_id", "not a UUID"))
    if errors:
        raise InvalidInput(errors)
    return {
        "candidates": candidates,
        "baseline": base,
        "live": _refs(live),
        "horizon_days": request.get("horizon_days", 180),
        "cohort": {
            "due_from": cohort.get("due_from"),
            "due_to": cohort.get("due_to"),
        },
    }


def _cohort(cohort: dict[str, Any]) -> dict[str, Any]:
    """The cohort's due dates as given, or InvalidInput: not reversed, and at most
    MAX_COHORT_DAYS apart (an open end is the default cohort's: up to today, or the year up
    to due_to)."""
    due_from, due_to = (
        date.fromisoformat(v) if isinstance(v, str) else v
        for v in (cohort.get("due_from"), cohort.get("due_to"))
    )
    if due_from is not None:
        end = due_to if due_to is not None else clock.now().date()
        if due_to is not None and due_to < due_from:
            raise InvalidInput([FieldError("cohort.due_to", "before cohort.due_from")])
        if due_to is None and due_from > end:
            raise InvalidInput(
                [FieldError("cohort.due_from", "after today: give due_to for a later cohort")]
            )
        if (end - due_from).days > MAX_COHORT_DAYS:
            raise InvalidInput(
                [
                    FieldError(
                        "cohort",
                        f"the due dates span at most {MAX_COHORT_DAYS} days "
                        "(an open due_to is today)",
                    )
                ]
            )
    return {"due_from": due_from, "due_to": due_to}


def request_key(resolved: dict[str, Any], version: str) -> str:
    text = json.dumps(resolved, sort_keys=True, default=str) + "|" + version
    return hashlib.sha256(text.encode()).hexdigest()


def simulation_job_id(simulation_id: UUID | str) -> str:
    """The RQ job id of a simulation: known from the row, so a lost job can be told."""
    return f"simulation-{simulation_id}"


async def settle_stale(scope: TenantScope, settings: Settings) -> None:
    """Simulations whose worker died (a heartbeat silent for KRAVLAB_JOB_STALE_SECONDS)
    failed; so did queued ones older than that whose job Redis no longer holds (a restart
    loses every job here): left queued they would hold the tenant's cap for good."""
    from backend import queue

    await queue.fail_lost_queued(
        scope,
        settings,
        Simulation,
        simulation_job_id,
        {
            Simulation.status: "failed",
            Simulation.error: "its job was lost from the queue (Redis restarted) or died before it "
            "started; run it again",
            Simulation.finished_at: clock.now(),
        },
    )
    cutoff = clock.now() - timedelta(seconds=settings.job_stale_seconds)
    await scope.update(
        Simulation,
        {
            Simulation.status: "failed",
            Simulation.error: "the worker running it stopped; run it again",
            Simulation.finished_at: clock.now(),
        },
    ).where(
        (Simulation.status == "running")
        & ((Simulation.heartbeat_at < cutoff) | Simulation.heartbeat_at.is_null())
    )


def install_gate() -> None:
    """Put the gate on policy activation (the composition root and the demo call this)."""
    if activation_gate not in policies.ACTIVATION_GATES:
        policies.ACTIVATION_GATES.append(activation_gate)


async def create(
    scope: TenantScope,
    settings: Settings,
    request: dict[str, Any],
    portfolio: UUID | None = None,
    enqueue: bool = True,
) -> tuple[dict[str, Any], bool]:
    """Queue a simulation; returns its row and whether a stored one was reused. With
    `enqueue` False the caller runs it (`run_now`): the demo, and a portfolio's fan-out."""
    from backend import queue
    from backend.jobs import run_simulation

    resolved = await resolve(scope, request)
    key = request_key(resolved, await data_version(scope))
    await settle_stale(scope, settings)
    simulation_id = uuid4()
    async with write_transaction():
        await scope.lock("simulations")  # two requests at once must not both pass the cap
        if portfolio is None:
            same = (
                await scope.select(Simulation)
                .where(
                    (Simulation.request_key == key)
                    & Simulation.status.is_in(["queued", "running", "done"])
                )
                .order_by(Simulation.created_at, ascending=False)
                .first()
            )
            if same is not None:
                return same, True
            # a cancelled one whose forecast still runs (its heartbeat is fresh) holds a
            # worker as much as a running one: cancel-and-resubmit must not pass the cap
            working = clock.now() - timedelta(seconds=settings.job_stale_seconds)
            active = await scope.count(Simulation).where(
                (
                    Simulation.status.is_in(["queued", "running"])
                    | ((Simulation.status == "cancelled") & (Simulation.heartbeat_at > working))
                )
                & Simulation.portfolio.is_null()
            )
            if active >= settings.max_active_simulations:
                raise TooManySimulations(
                    f"{active} simulations of this tenant are queued or running, the most "
                    f"there may be (KRAVLAB_MAX_ACTIVE_SIMULATIONS): wait for one to finish, "
                    "or cancel one",
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                )
        await scope.insert(
            Simulation,
            {
                "id": simulation_id,
                "status": "queued",
                "request": json.dumps(resolved, default=str),
                "request_key": key,
                "created_by": scope.principal.actor,
                "created_at": clock.now(),
                "portfolio": portfolio,
            },
        )
        versions = [
            {
                "id": uuid4(),
                "simulation": simulation_id,
                "policy": UUID(c["version"]["policy_id"]),
                "version": c["version"]["version"],
                "name": name,
                "baseline": json.dumps(resolved["live"]),
            }
            for name, c in resolved["candidates"].items()
            if c["version"] is not None
        ]
        if versions:
            await scope.insert(SimulatedVersion, *versions)
    if enqueue:
        try:
            # A model to fit first is fitted once, by a job this one waits for.
            fit = await tenant_model.fit_to_wait_for(scope, settings)
            queue.enqueue(
                settings,
                run_simulation,
                str(scope.tenant_id),
                str(simulation_id),
                job_id=simulation_job_id(simulation_id),
                timeout=JOB_TIMEOUT_SECONDS,
                depends_on=[fit] if fit and settings.redis_url else None,
            )
        except queue.QueueUnavailable:
            await scope.delete(Simulation).where(Simulation.id == simulation_id)
            raise
    await scope.audit("simulation.requested", "simulation", simulation_id)
    return await scope.get(Simulation, simulation_id), False


def _candidates(resolved: dict[str, Any]) -> dict[str, list[Policy] | str]:
    base = resolved["baseline"]
    out: dict[str, list[Policy] | str] = {
        base["name"]: ACTUAL
        if base["kind"] == ACTUAL
        else [p for d in base["policies"] for p in parse_policies(d, bounded=False)]
    }
    for name, candidate in resolved["candidates"].items():
        # checked when the request was resolved (stored versions may predate the bounds)
        out[name] = [p for d in candidate["policies"] for p in parse_policies(d, bounded=False)]
    return out


async def _set(scope: TenantScope, simulation_id: UUID, **values: Any) -> None:
    await scope.update(Simulation, {getattr(Simulation, k): v for k, v in values.items()}).where(
        Simulation.id == simulation_id
    )


async def run_now(scope: TenantScope, settings: Settings, simulation_id: UUID) -> str:
    """The job: forecast the stored request on the book as of today; returns the status."""
    claimed = (
        await scope.update(
            Simulation,
            {
                Simulation.status: "running",
                Simulation.started_at: clock.now(),
                Simulation.heartbeat_at: clock.now(),
            },
        )
        .where((Simulation.id == simulation_id) & (Simulation.status == "queued"))
        .returning(Simulation.id, Simulation.request)
    )
    if not claimed:
        row = (
            await scope.select(Simulation, Simulation.status)
            .where(Simulation.id == simulation_id)
            .first()
        )
        return row["status"] if row else "missing"
    resolved = json.loads(claimed[0]["request"])
    try:
        return await _run_claimed(scope, settings, simulation_id, resolved)
    finally:
        # A cancelled simulation counts against the cap while its work goes on (the forecast
        # cannot be stopped midway): once it has ended, it no longer does.
        await scope.update(Simulation, {Simulation.heartbeat_at: None}).where(
            (Simulation.id == simulation_id) & (Simulation.status == "cancelled")
        )


async def _run_claimed(
    scope: TenantScope, settings: Settings, simulation_id: UUID, resolved: dict[str, Any]
) -> str:

    async def beat() -> None:
        await _set(scope, simulation_id, heartbeat_at=clock.now())

    try:
        async with tenant_model.heartbeat(beat, settings):  # a long read is work too
            history = await cached_history(scope, settings.var_dir, clock.now().date())
            await _set(scope, simulation_id, progress=100, heartbeat_at=clock.now())
            model, model_row = await tenant_model.for_history(scope, settings, history)
        if await _cancelled(scope, simulation_id):
            return "cancelled"
        await _set(scope, simulation_id, progress=600, heartbeat_at=clock.now())
        cohort_in = resolved["cohort"]
        cohort = default_cohort(
            history,
            day_number(date.fromisoformat(cohort_in["due_from"]))
            if cohort_in["due_from"]
            else None,
            day_number(date.fromisoformat(cohort_in["due_to"])) if cohort_in["due_to"] else None,
        )
        # Intervals carry the model-form error the tenant's own backtests measured.
        calibration = (model.backtest or {}).get("calibration")
        options = Options(horizon=resolved["horizon_days"], draws=DRAWS, calibration=calibration)
        async with tenant_model.heartbeat(beat, settings):
            result = await asyncio.to_thread(
                forecast, history, model, _candidates(resolved), cohort, options
            )
        summary = json.loads(model_row["summary"])
        result["model"] = {
            "id": str(model_row["id"]),
            "fitted_at": model.fitted_at,
            "invoices": model.invoices,
            "backtest": summary.get("backtest"),
        }
    except (EmptyBook, ValueError) as exc:
        await _set(
            scope, simulation_id, status="failed", error=str(exc)[:500], finished_at=clock.now()
        )
        return "failed"
    except Exception as exc:
        log.exception("simulation failed", simulation=str(simulation_id))
        await _set(
            scope,
            simulation_id,
            status="failed",
            error=f"internal error: {type(exc).__name__}",
            finished_at=clock.now(),
        )
        raise
    done = (
        await scope.update(
            Simulation,
            {
                Simulation.status: "done",
                Simulation.progress: 1000,
                Simulation.result: json.dumps(result),
                Simulation.model: model_row["id"],
                Simulation.fingerprint: model.fingerprint,
                Simulation.finished_at: clock.now(),
                Simulation.heartbeat_at: None,
            },
        )
        .where((Simulation.id == simulation_id) & (Simulation.status == "running"))
        .returning(Simulation.id)
    )
    return "done" if done else "cancelled"


async def _cancelled(scope: TenantScope, simulation_id: UUID) -> bool:
    row = (
        await scope.select(Simulation, Simulation.status)
        .where(Simulation.id == simulation_id)
        .first()
    )
    return row is None or row["status"] == "cancelled"


def view(row: dict[str, Any]) -> dict[str, Any]:
    """A simulation as the API shows it (formats §3 result once done)."""
    request = json.loads(row["request"])
    return {
        "id": row["id"],
        "status": row["status"],
        "progress": row["progress"] / 1000,
        "created_at": row["created_at"],
        "created_by": row["created_by"],
        "finished_at": row["finished_at"],
        "candidates": {name: c["version"] for name, c in request["candidates"].items()},
        "baseline": request["baseline"]["kind"],
        "error": row["error"],
        "result": json.loads(row["result"]) if row["result"] else None,
    }


async def get(scope: TenantScope, settings: Settings, simulation_id: UUID) -> dict[str, Any]:
    await settle_stale(scope, settings)
    return view(await scope.get(Simulation, simulation_id))


async def page(
    scope: TenantScope, settings: Settings, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first, without their results (GET one for that)."""
    await settle_stale(scope, settings)
    query = (
        scope.select(
            Simulation,
            Simulation.id,
            Simulation.status,
            Simulation.progress,
            Simulation.request,
            Simulation.created_at,
            Simulation.created_by,
            Simulation.finished_at,
            Simulation.error,
        )
        .order_by(Simulation.created_at, ascending=False)
        .order_by(Simulation.id, ascending=False)
    )
    if cursor is not None:
        moment, before = decode_cursor_as(cursor, utc_moment, UUID)
        query = query.where(
            (Simulation.created_at < moment)
            | ((Simulation.created_at == moment) & (Simulation.id < before))
        )
    rows, next_cursor = await keyset_page(
        query, limit, lambda r: (clock.aware(r["created_at"]).isoformat(), r["id"])
    )
    return [view({**r, "result": None}) for r in rows], next_cursor


async def cancel(scope: TenantScope, settings: Settings, simulation_id: UUID) -> dict[str, Any]:
    row = await scope.get(Simulation, simulation_id)
    if row["portfolio"] is not None:
        raise SimulationConflict(
            "part of the agency's portfolio simulation: not the tenant's to cancel"
        )
    if row["status"] not in ("queued", "running"):
        raise SimulationConflict(f"the simulation is {row['status']}: nothing to cancel")
    await scope.update(
        Simulation, {Simulation.status: "cancelled", Simulation.finished_at: clock.now()}
    ).where((Simulation.id == simulation_id) & Simulation.status.is_in(["queued", "running"]))
    await scope.audit("simulation.cancelled", "simulation", simulation_id)
    return await get(scope, settings, simulation_id)


async def activation_gate(activation: Activation) -> dict[str, Any]:
    """A version goes live only after a finished simulation of exactly it against the
    current live set on the current data; answers that simulation's effect."""
    scope = activation.scope
    live = _refs(await live_versions(scope))
    simulated = await scope.select(
        SimulatedVersion,
        SimulatedVersion.simulation,
        SimulatedVersion.name,
        SimulatedVersion.baseline,
    ).where(
        (SimulatedVersion.policy == activation.policy_id)
        & (SimulatedVersion.version == activation.number)
    )
    matching = {r["simulation"]: r["name"] for r in simulated if json.loads(r["baseline"]) == live}
    if not matching:
        raise GateRefused(
            f"version {activation.number} was never simulated against the live policies: "
            "POST /simulations with it as a candidate, then activate"
        )
    version = await data_version(scope)
    rows = (
        await scope.select(
            Simulation, Simulation.id, Simulation.request_key, Simulation.request, Simulation.result
        )
        .where(Simulation.id.is_in(list(matching)) & (Simulation.status == "done"))
        .order_by(Simulation.finished_at, ascending=False)
    )
    for row in rows:
        if request_key(json.loads(row["request"]), version) == row["request_key"]:
            result = json.loads(row["result"])
            name = matching[row["id"]]
            return {
                "simulation_id": str(row["id"]),
                "candidate": name,
                "recovery": result["results"][name]["recovery"],
                "delta": result["deltas"].get(name),
            }
    if rows:
        raise GateRefused(
            f"the simulations of version {activation.number} ran on older data: the book has "
            "changed since; simulate it again"
        )
    raise GateRefused(
        f"no simulation of version {activation.number} has finished yet: wait for it, then activate"
    )
