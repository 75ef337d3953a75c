"""The agency's portfolio simulation: every client's live policies forecast and combined."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from msgspec import Meta, Struct

from backend import portfolio
from backend.api.statuses import error_response
from backend.settings import Settings
from tenants.access import Principal
from tenants.scope import AgencyScope


class PortfolioIn(Struct, forbid_unknown_fields=True):
    tenant_ids: (
        Annotated[list[UUID], Meta(min_length=1, max_length=portfolio.MAX_TENANTS)] | None
    ) = None
    horizon_days: Annotated[int, Meta(ge=30, le=730)] = 180


class PortfolioOut(Struct):
    id: UUID
    status: Literal["queued", "running", "done", "partial", "failed", "cancelled"]
    created_at: datetime
    created_by: str
    finished_at: datetime | None
    error: str | None
    tenants: list[str]
    result: (
        Annotated[
            dict[str, Any],
            Meta(
                description="per currency: invoices, amount, recovery and cash curve weighted "
                "by amount, fees, interest, channel cost, escalations; and each tenant's status"
            ),
        ]
        | None
    )


class PortfolioSimulationController(Controller):
    path = "/api/v1/portfolio/simulations"
    tags = ["simulation"]

    @post(
        "/",
        status_code=202,
        opt={"permission": "portfolio:simulate", "body": PortfolioIn},
        responses={
            409: error_response(
                409,
                "A tenant's part cannot be created (the message names it; nothing was "
                "written), or a request with this Idempotency-Key is in flight",
            ),
            422: error_response(
                422,
                "Invalid input: an unknown tenant (tenant_ids[i]), more tenants than "
                "KRAVLAB_MAX_PORTFOLIO_TENANTS (tenant_ids), or the Idempotency-Key was used "
                "for another request",
            ),
        },
        summary="Forecast every client's live policies: one job per tenant, then a combining job",
    )
    async def create_portfolio(
        self,
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
        data: JSONBody[PortfolioIn | None] = None,
    ) -> PortfolioOut:
        body = data or PortfolioIn()
        run = await portfolio.create(
            AgencyScope.open(principal), settings, body.tenant_ids, body.horizon_days
        )
        return msgspec.convert(run, PortfolioOut)

    @get(
        "/{run_id:uuid}",
        opt={"permission": "portfolio:simulate"},
        summary="A portfolio simulation's status, and the combined forecast once done",
    )
    async def get_portfolio(
        self,
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
        run_id: FromPath[UUID],
    ) -> PortfolioOut:
        AgencyScope.open(principal)  # the agency's own: a tenant's credential gets 404
        return msgspec.convert(await portfolio.get(run_id, settings), PortfolioOut)

    @delete(
        "/{run_id:uuid}",
        status_code=200,
        opt={"permission": "portfolio:simulate"},
        raises=[portfolio.PortfolioConflict],
        summary="Cancel a portfolio simulation that has not ended, and its unfinished parts",
    )
    async def cancel_portfolio(
        self,
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
        run_id: FromPath[UUID],
    ) -> PortfolioOut:
        agency = AgencyScope.open(principal)  # the agency's own: a tenant's credential gets 404
        return msgspec.convert(await portfolio.cancel(agency, settings, run_id), PortfolioOut)
