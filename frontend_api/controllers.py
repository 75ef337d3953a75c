"""The console's JSON endpoints: the agency's portfolio and trend, a client's dashboard.

Same authentication, roles and guard as the machine API (`tenants.access`); the portfolio
opens an `AgencyScope` (a tenant's credential gets 404 there), the dashboard the path's
`TenantScope`. The console's pages render these same answers.
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromQuery, QueryParameter

from backend.book import today
from backend.validation import SINGLE_LINE
from frontend_api import figures
from frontend_api.dashboard import dashboard
from frontend_api.portfolio import portfolio
from frontend_api.schemas import (
    CurrencyTrend,
    DashboardOut,
    MonthOut,
    PortfolioOut,
    SortKey,
    TrendOut,
)
from tenants.access import Principal
from tenants.scope import AgencyScope, TenantScope

MAX_MONTHS = 36
Months = Annotated[int, QueryParameter(ge=1, le=MAX_MONTHS, description="months, default 12")]


class PortfolioController(Controller):
    path = "/api/v1/portfolio"
    tags = ["console"]

    @get(
        "/",
        opt={"permission": "portfolio:read"},
        raises=[figures.SumOverflow],
        summary="Every client's receivables: ageing, DSO, cases, fees, policy, alerts",
    )
    async def get_portfolio(
        self,
        principal: NamedDependency[Principal],
        sort: Annotated[SortKey, QueryParameter(description="default outstanding")] = "outstanding",
        order: FromQuery[Literal["asc", "desc"]] = "desc",
        q: Annotated[
            str | None,
            QueryParameter(max_length=100, pattern=SINGLE_LINE, description="name or slug part"),
        ] = None,
        alerts: Annotated[
            bool | None, QueryParameter(description="true: only clients with alerts")
        ] = None,
    ) -> PortfolioOut:
        found = await portfolio(
            AgencyScope.open(principal),
            today(),
            sort=sort,
            descending=order == "desc",
            q=q,
            with_alerts=alerts,
        )
        return msgspec.convert(found, PortfolioOut)

    @get(
        "/trend",
        opt={"permission": "portfolio:read"},
        raises=[NotFoundException, figures.SumOverflow],
        summary="Invoiced, cash in and fees per month, every client or one",
    )
    async def trend(
        self,
        principal: NamedDependency[Principal],
        months: Months = 12,
        client: Annotated[UUID | None, QueryParameter(description="one client's id only")] = None,
    ) -> TrendOut:
        agency = AgencyScope.open(principal)
        scope: figures.Scope = agency if client is None else await agency.tenant(client)
        on = today()
        found = await figures.monthly(scope, on, months)
        return TrendOut(
            on,
            [
                CurrencyTrend(currency, msgspec.convert(series, list[MonthOut]))
                for currency, series in found.items()
            ],
        )


class DashboardController(Controller):
    path = "/api/v1/tenants/{tenant_id:uuid}/dashboard"
    tags = ["console"]

    @get(
        "/",
        opt={"permission": "read"},
        raises=[figures.SumOverflow],
        summary="The client's book: ageing, cash in, contacts, fees, unmatched, held",
    )
    async def get_dashboard(
        self, tenant: NamedDependency[TenantScope], months: Months = 12
    ) -> DashboardOut:
        return msgspec.convert(await dashboard(tenant, today(), months), DashboardOut)
