"""The answers of the console's endpoints (money in minor units, days as decimals)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

from msgspec import Meta, Struct

MinorUnits = Annotated[int, Meta(description="minor units (öre, cents)")]
Days = Annotated[float | None, Meta(description="days; null when there were no sales")]
SortKey = Literal[
    "name",
    "outstanding",
    "overdue",
    "d90_plus",
    "dso",
    "days_beyond_terms",
    "open_cases",
    "fees_12m",
    "alerts",
]


class Ageing(Struct):
    not_due: MinorUnits
    d1_30: MinorUnits
    d31_60: MinorUnits
    d61_90: MinorUnits
    d90_plus: MinorUnits


class AgeingCount(Struct):
    not_due: int
    d1_30: int
    d31_60: int
    d61_90: int
    d90_plus: int


class BookFigures(Struct, kw_only=True):
    outstanding: MinorUnits
    overdue: MinorUnits
    open_invoices: int
    ageing: Ageing
    ageing_count: AgeingCount
    invoiced_90d: Annotated[int, Meta(description="invoiced in the last 90 days: DSO's sales")]
    dso: Days
    best_possible_dso: Days
    days_beyond_terms: Days


class Alert(Struct):
    kind: Literal[
        "webhooks_failing",
        "channel_failing",
        "interest_unknown",
        "no_live_policy",
        "model_missing",
        "model_stale",
        "model_no_skill",
        "reference_rate_missing",
    ]
    message: str


class RecoveryPoint(Struct):
    day: Annotated[int, Meta(description="days after the due date: 0, 30, 60 or 90")]
    paid: Annotated[int, Meta(description="paid on the cohort's invoices by that day, minor units")]
    share: Annotated[
        float | None, Meta(description="paid ÷ the cohort's amount (0–1); null when it is 0")
    ]


class Cohort(Struct):
    month: Annotated[str, Meta(description="YYYY-MM: the month the cohort's invoices fell due")]
    amount: Annotated[int, Meta(description="live invoices due that month, minor units")]
    points: Annotated[
        list[RecoveryPoint],
        Meta(description="only the days every invoice of the cohort has passed"),
    ]


class ClientRow(BookFigures, kw_only=True):
    tenant_id: UUID
    name: str
    slug: str
    status: str
    currency: str
    open_cases: int
    escalations_30d: Annotated[int, Meta(description="cases opened in the last 30 days")]
    fees_12m: Annotated[int, Meta(description="fees charged by steps in the last 365 days")]
    failed_contacts_7d: int
    failed_webhooks_7d: int
    interest_unknown: Annotated[int, Meta(description="open invoices whose interest is unknown")]
    live_policies: list[str]
    model_fitted_at: datetime | None
    model_mae_pp: Annotated[
        float | None, Meta(description="the serving model's backtest mean error, in pp")
    ]
    model_skill: Annotated[
        float | None, Meta(description="1 − model error ÷ best naive forecast's; ≤ 0: no skill")
    ]
    last_simulation_at: datetime | None
    alerts: list[Alert]
    recovery: Annotated[
        list[Cohort],
        Meta(description="recovery curves of the last six monthly due-date cohorts, oldest first"),
    ]


class PortfolioTotals(BookFigures, kw_only=True):
    currency: Annotated[str, Meta(description="the currency these clients' books are in")]
    clients: Annotated[int, Meta(description="clients whose currency this is")]


class PortfolioOut(Struct):
    as_of: date
    dso_method: str
    sort: SortKey
    order: Literal["asc", "desc"]
    totals: Annotated[
        list[PortfolioTotals],
        Meta(description="the clients' sums, one per currency (amounts are never added across)"),
    ]
    clients: list[ClientRow]
    reference_rate_missing: str | None
    reference_rate_missing_from: Annotated[
        date | None, Meta(description="the half-year whose reference rate is missing")
    ] = None


class MonthOut(Struct):
    month: Annotated[str, Meta(description="YYYY-MM")]
    invoiced: MinorUnits
    cash_in: MinorUnits
    fees: MinorUnits


class CurrencyTrend(Struct):
    currency: str
    months: list[MonthOut]


class TrendOut(Struct):
    as_of: date
    series: Annotated[
        list[CurrencyTrend],
        Meta(description="one per currency of the clients asked for, the clients' sums in it"),
    ]


class CashInDay(Struct):
    date: date
    amount: MinorUnits
    cumulative: MinorUnits


class ContactRow(Struct):
    id: UUID
    invoice_id: UUID
    invoice_external_id: str
    run_date: date
    action: str
    channel: str
    fee: MinorUnits
    status: str


class UnmatchedPayment(Struct):
    id: UUID
    external_id: str
    amount: MinorUnits
    paid_date: date
    reference: str | None


class Unmatched(Struct):
    count: int
    amount: MinorUnits
    items: list[UnmatchedPayment]


class HeldInvoice(Struct):
    id: UUID
    external_id: str
    debtor_name: str
    state: Literal["paused", "disputed"]
    due_date: date
    amount: MinorUnits
    outstanding: MinorUnits
    paused_until: date | None


class HeldCounts(Struct):
    paused: int
    disputed: int


class Held(Struct):
    counts: HeldCounts
    items: list[HeldInvoice]


class DashboardOut(BookFigures, kw_only=True):
    tenant_id: UUID
    currency: str
    as_of: date
    dso_method: str
    open_cases: int
    cash_in: list[CashInDay]
    monthly: list[MonthOut]
    recent_contacts: list[ContactRow]
    unmatched: Unmatched
    held: Held
