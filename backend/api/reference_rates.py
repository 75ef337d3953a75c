"""The Riksbank reference-rate table: every credential reads it, agency admins add half-years."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from msgspec import Meta, Struct

from backend import reference_rates
from backend.interest import half_year_start
from backend.reference_rates import RATE_RANGE_BP
from tenants import clock
from tenants.access import Principal
from tenants.onboarding import ConflictError

RateBp = Annotated[
    int,
    Meta(
        ge=RATE_RANGE_BP[0],
        le=RATE_RANGE_BP[1],
        description="the reference rate in basis points (200 = 2.00 %)",
    ),
]


class ReferenceRateIn(Struct, forbid_unknown_fields=True):
    valid_from: Annotated[
        date, Meta(description="1 January or 1 July: the half-year it applies to")
    ]
    rate_bp: RateBp


class ReferenceRate(Struct):
    valid_from: date
    rate_bp: int


class ReferenceRateTable(Struct):
    """The whole table (two rows a year), oldest first, and whether today's half-year is in it."""

    items: list[ReferenceRate]
    current_half_year: Annotated[date, Meta(description="the half-year holding today (UTC)")]
    current_missing: Annotated[
        bool,
        Meta(description="true: today's half-year has no row, so late interest is unknown"),
    ]


class ReferenceRateController(Controller):
    path = "/api/v1/reference-rates"
    tags = ["reference rates"]

    @get("/", opt={"permission": "me"}, summary="The reference-rate table")
    async def list_rates(self) -> ReferenceRateTable:
        today = clock.now().date()
        alert = await reference_rates.missing_rate_alert(today)
        return ReferenceRateTable(
            items=msgspec.convert(await reference_rates.rows(), list[ReferenceRate]),
            current_half_year=half_year_start(today),
            current_missing=alert is not None,
        )

    @post(
        "/",
        opt={"permission": "rates:manage", "body": ReferenceRateIn},
        raises=[ConflictError],
        summary="Add a half-year's reference rate",
    )
    async def add_rate(
        self, data: JSONBody[ReferenceRateIn], principal: NamedDependency[Principal]
    ) -> ReferenceRate:
        row = await reference_rates.add(data.valid_from, data.rate_bp, principal)
        return ReferenceRate(row["valid_from"], row["rate_bp"])
