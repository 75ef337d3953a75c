"""What-if simulations and the tenant's behaviour model (API.md: "Simulation")."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import Controller, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from msgspec import Meta, Struct

from backend import simulations, tenant_model
from backend.api.deps import Cursor, Limit
from backend.api.page import Page
from backend.api.statuses import error_response
from backend.settings import Settings
from tenants.scope import TenantScope

CandidateName = Annotated[
    str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.\-]*$")
]
Candidate = Annotated[
    dict[str, Any],
    Meta(
        description="a policy document (formats §2), a set of them ({policies: [...]}), or a "
        "stored version {policy_id, version}: simulated as it would go live, in place of the "
        "live version of its policy or segment"
    ),
]


class CohortIn(Struct, forbid_unknown_fields=True):
    due_from: date | None = None
    due_to: date | None = None


class SimulationIn(Struct, forbid_unknown_fields=True):
    candidates: Annotated[
        dict[CandidateName, Candidate],
        Meta(min_length=1, max_length=simulations.MAX_CANDIDATES),
    ]
    baseline: (
        Annotated[
            Literal["live", "actual"],
            Meta(description="live: the live policy set; actual: the history's own routine"),
        ]
        | Annotated[dict[str, Any], Meta(description="a policy document")]
    ) = "live"
    horizon_days: Annotated[int, Meta(ge=30, le=730)] = 180
    cohort: CohortIn | None = None


class Queued(Struct):
    id: UUID
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    reused: bool = False


class VersionRef(Struct):
    policy_id: UUID
    version: int


class SimulationOut(Struct):
    id: UUID
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    progress: Annotated[float, Meta(ge=0, le=1)]
    created_at: datetime
    created_by: str
    finished_at: datetime | None
    candidates: dict[str, VersionRef | None]
    baseline: str
    error: str | None
    result: (
        Annotated[
            dict[str, Any],
            Meta(
                description="the forecast JSON of formats §3 plus model {fitted_at, invoices, backtest}"
            ),
        ]
        | None
    )


class Parameter(Struct):
    name: str
    estimate: float
    se: float
    source: Literal["data", "prior"]
    data_share: float


class FitRef(Struct):
    id: UUID
    status: Literal["queued", "running"]


class ModelOut(Struct):
    id: UUID
    fitted_at: datetime
    invoices: int
    fingerprint: str
    as_of: date
    classes: int
    parameters: list[Parameter]
    priors: list[str]
    warnings: list[str]
    backtest: (
        Annotated[
            dict[str, Any],
            Meta(description="rolling-origin backtest: mae_pp, coverage, skill vs naive baselines"),
        ]
        | None
    )
    class_selection: dict[str, Any] | None = None
    convergence: dict[str, Any] | None = None
    refit: FitRef | None = None


class SimulationController(Controller):
    path = "/api/v1/tenants/{tenant_id:uuid}"
    tags = ["simulation"]

    @post(
        "/simulations",
        status_code=202,
        opt={"permission": "simulations:run", "body": SimulationIn},
        request_max_body_size=simulations.MAX_BODY_BYTES,
        responses={
            413: error_response(413, "The request body exceeds 512 KiB"),
            429: error_response(
                429,
                "Rate limit used up, or the tenant already has KRAVLAB_MAX_ACTIVE_SIMULATIONS "
                "(default 3) simulations queued or running: retry after the Retry-After "
                "header's seconds, or cancel one",
            ),
        },
        summary="Queue a what-if forecast of candidate policies against a baseline",
    )
    async def create_simulation(
        self,
        tenant: NamedDependency[TenantScope],
        settings: NamedDependency[Settings],
        data: JSONBody[SimulationIn],
    ) -> Queued:
        row, reused = await simulations.create(tenant, settings, msgspec.to_builtins(data))
        return Queued(row["id"], row["status"], reused)

    @get(
        "/simulations", opt={"permission": "read"}, summary="The tenant's simulations, newest first"
    )
    async def list_simulations(
        self,
        tenant: NamedDependency[TenantScope],
        settings: NamedDependency[Settings],
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[SimulationOut]:
        items, next_cursor = await simulations.page(tenant, settings, limit, cursor)
        return Page(msgspec.convert(items, list[SimulationOut]), next_cursor)

    @get(
        "/simulations/{simulation_id:uuid}",
        opt={"permission": "read"},
        summary="A simulation's status and progress, and its forecast once done",
    )
    async def get_simulation(
        self,
        tenant: NamedDependency[TenantScope],
        settings: NamedDependency[Settings],
        simulation_id: FromPath[UUID],
    ) -> SimulationOut:
        found = await simulations.get(tenant, settings, simulation_id)
        return msgspec.convert(found, SimulationOut)

    @delete(
        "/simulations/{simulation_id:uuid}",
        status_code=200,
        opt={"permission": "simulations:run"},
        raises=[simulations.SimulationConflict],
        summary="Cancel a queued or running simulation",
    )
    async def cancel_simulation(
        self,
        tenant: NamedDependency[TenantScope],
        settings: NamedDependency[Settings],
        simulation_id: FromPath[UUID],
    ) -> SimulationOut:
        cancelled = await simulations.cancel(tenant, settings, simulation_id)
        return msgspec.convert(cancelled, SimulationOut)

    @get("/model", opt={"permission": "read"}, summary="The tenant's fitted behaviour model")
    async def get_model(
        self, tenant: NamedDependency[TenantScope], settings: NamedDependency[Settings]
    ) -> ModelOut:
        return msgspec.convert(await tenant_model.describe(tenant, settings), ModelOut)

    @post(
        "/model",
        status_code=202,
        opt={"permission": "simulations:run"},
        summary="Fit the model to the book now (a fit under way is reused)",
    )
    async def fit_model(
        self, tenant: NamedDependency[TenantScope], settings: NamedDependency[Settings]
    ) -> Response[FitRef]:
        row = await tenant_model.request_fit(tenant, settings)
        return Response(FitRef(row["id"], row["status"]), status_code=202)
