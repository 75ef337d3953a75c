"""The receivables figures the console shows, each computed by the database.

Every figure is a `GROUP BY` over the invoice book run through a scope's `select` (an
`AgencyScope` for the whole portfolio, grouped by tenant; a `TenantScope` for one client),
so a book of ten million invoices is summed where it lives and Python receives one row per
tenant and bucket, never the invoices themselves.

Definitions (stated on every answer, so a reader knows what a number means):
- outstanding: principal not yet paid of unsettled live invoices, written-off ones excluded
  (history loaded by an import is the simulator's, not the book's, and is left out);
- ageing buckets by days past due on `as_of`: not due, 1–30, 31–60, 61–90, over 90;
- DSO, standard method: outstanding ÷ amount invoiced in the last 90 days × 90;
- best possible DSO: not-yet-due outstanding ÷ the same sales × 90;
- days beyond terms (ADD): DSO − best possible DSO, the days lost to late payment;
- recovery curves: for each of the last six months, the live invoices due in it (a
  cohort), and the share of their amount paid by day 0, 30, 60 and 90 after the due date
  (payments matched to those invoices, early ones counting on day 0), each day only once
  every invoice of the cohort has passed it.

The monthly trend and the recovery curves read `book_months` (backend.book_months), the
book summed per tenant and month by database triggers; `monthly_from_book` and
`recovery_from_book` sum the same figures from the book itself.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, ParamSpec, Protocol, TypeVar
from uuid import UUID

from litestar.exceptions import ClientException
from piccolo.query import Select
from piccolo.query.functions.aggregate import Count, Max, Sum
from piccolo.querystring import QueryString
from piccolo.table import Table

from backend import book_months
from backend.tables import (
    BookMonth,
    CollectionCase,
    DunningStep,
    Invoice,
    Payment,
    PolicyVersion,
    Simulation,
    TenantModel,
    WebhookDelivery,
)
from tenants.scope import TenantScope
from tenants.tables import Tenant

SALES_WINDOW_DAYS = 90
DSO_METHOD = (
    f"standard method: outstanding ÷ amount invoiced in the last {SALES_WINDOW_DAYS} days × "
    f"{SALES_WINDOW_DAYS}; days beyond terms = DSO − best possible DSO (not-yet-due "
    f"outstanding ÷ the same sales × {SALES_WINDOW_DAYS})"
)
BUCKETS = ("not_due", "d1_30", "d31_60", "d61_90", "d90_plus")
# Contacts and deliveries that failed within this many days raise a channel or webhook alert.
ALERT_WINDOW_DAYS = 7
# A fitted model older than this is stale: the book it learnt from has moved on.
MODEL_STALE_DAYS = 90
FEE_WINDOW_DAYS = 365
# Monthly due-date cohorts whose recovery curves the portfolio shows.
RECOVERY_COHORTS = 6
P = ParamSpec("P")
R = TypeVar("R")


class SumOverflow(ClientException):
    """The amounts add up past a signed 64-bit integer, which SQLite's SUM cannot hold
    (PostgreSQL sums them as numeric); only an absurd book gets here."""

    status_code = 409


def sums(work: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """`work`, with SQLite's integer overflow in a SUM answered as SumOverflow (409)."""

    @functools.wraps(work)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await work(*args, **kwargs)
        except sqlite3.OperationalError as exc:
            if "integer overflow" not in str(exc):
                raise
            raise SumOverflow(
                "the book's amounts add up past 2^63 minor units, more than the embedded "
                "SQLite database can sum; PostgreSQL can"
            ) from exc

    return guarded


class Scope(Protocol):
    """Either door: `AgencyScope` (every tenant) or `TenantScope` (one)."""

    def select(self, table: type[Table], *columns: Any) -> Select: ...


@dataclass
class Book:
    """One tenant's figures (or the portfolio's sums, under `tenant_id` None)."""

    outstanding: int = 0
    open_invoices: int = 0
    ageing: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0))
    ageing_count: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0))
    invoiced_90d: int = 0
    interest_unknown: int = 0  # open invoices whose late interest is unknown (a rate missing)

    @property
    def overdue(self) -> int:
        return self.outstanding - self.ageing["not_due"]

    @property
    def dso(self) -> float | None:
        if self.invoiced_90d <= 0:
            return None
        return round(self.outstanding / self.invoiced_90d * SALES_WINDOW_DAYS, 1)

    @property
    def best_possible_dso(self) -> float | None:
        if self.invoiced_90d <= 0:
            return None
        return round(self.ageing["not_due"] / self.invoiced_90d * SALES_WINDOW_DAYS, 1)

    @property
    def days_beyond_terms(self) -> float | None:
        dso, best = self.dso, self.best_possible_dso
        return None if dso is None or best is None else round(dso - best, 1)


def _open() -> Any:
    """Unsettled live invoices that still count as owed."""
    return (
        Invoice.settled_date.is_null()
        & (Invoice.state != "written_off")
        & (Invoice.origin == "live")
    )


def bucket_ranges(as_of: date) -> dict[str, Any]:
    """Each bucket's condition on the due date (days past due = as_of − due_date)."""
    day = timedelta(days=1)
    d30, d60, d90 = as_of - 30 * day, as_of - 60 * day, as_of - 90 * day
    return {
        "not_due": Invoice.due_date >= as_of,
        "d1_30": (Invoice.due_date < as_of) & (Invoice.due_date >= d30),
        "d31_60": (Invoice.due_date < d30) & (Invoice.due_date >= d60),
        "d61_90": (Invoice.due_date < d60) & (Invoice.due_date >= d90),
        "d90_plus": Invoice.due_date < d90,
    }


def _key(value: Any) -> str:
    return str(value)


@sums
async def books(scope: Scope, as_of: date) -> dict[str, Book]:
    """Outstanding, ageing and the last 90 days' sales per tenant (keys: tenant id text).

    One query per bucket, each a range of the unpaid invoices' due dates (an index range,
    grouped by tenant): measured faster on PostgreSQL than one pass grouped by a CASE on
    the due date, which it sorts (bench/portfolio.py)."""
    found: dict[str, Book] = defaultdict(Book)
    unknown = QueryString('CASE WHEN "invoices"."interest_accrued" IS NULL THEN 1 ELSE 0 END')
    since = as_of - timedelta(days=SALES_WINDOW_DAYS)
    ranges = bucket_ranges(as_of)
    # Independent reads, sent together: on PostgreSQL each takes its own pooled connection.
    *per_bucket, sales = await asyncio.gather(
        *(
            scope.select(
                Invoice,
                Invoice.tenant,
                Sum(Invoice.amount, alias="amount"),
                Sum(Invoice.paid_amount, alias="paid"),
                Count(alias="n"),
                Sum(unknown, alias="unknown"),
            )
            .where(_open() & condition)
            .group_by(Invoice.tenant)
            for condition in ranges.values()
        ),
        scope.select(Invoice, Invoice.tenant, Sum(Invoice.amount, alias="amount"))
        .where((Invoice.origin == "live") & (Invoice.issue_date > since))
        .where(Invoice.issue_date <= as_of)
        .group_by(Invoice.tenant),
    )
    for bucket, rows in zip(ranges, per_bucket, strict=True):
        for row in rows:
            book = found[_key(row["tenant"])]
            owed = int(row["amount"] or 0) - int(row["paid"] or 0)
            book.ageing[bucket] += owed
            book.ageing_count[bucket] += int(row["n"])
            book.outstanding += owed
            book.open_invoices += int(row["n"])
            book.interest_unknown += int(row["unknown"] or 0)
    for row in sales:
        found[_key(row["tenant"])].invoiced_90d = int(row["amount"] or 0)
    return dict(found)


async def _count_by_tenant(query: Select) -> dict[str, int]:
    return {_key(r["tenant"]): int(r["n"] or 0) for r in await query}


@sums
async def activity(scope: Scope, as_of: date) -> dict[str, dict[str, Any]]:
    """Cases, fees, failures, live policies, model and simulation per tenant."""
    week = as_of - timedelta(days=ALERT_WINDOW_DAYS)
    out: dict[str, dict[str, Any]] = defaultdict(dict)
    open_cases, escalated, fees, failed_contacts, failed_hooks = await asyncio.gather(
        _count_by_tenant(
            scope.select(CollectionCase, CollectionCase.tenant, Count(alias="n"))
            .where(CollectionCase.status == "open")
            .group_by(CollectionCase.tenant)
        ),
        _count_by_tenant(
            scope.select(CollectionCase, CollectionCase.tenant, Count(alias="n"))
            .where(CollectionCase.opened_on > as_of - timedelta(days=30))
            .group_by(CollectionCase.tenant)
        ),
        _count_by_tenant(
            scope.select(DunningStep, DunningStep.tenant, Sum(DunningStep.fee, alias="n"))
            .where(DunningStep.run_date > as_of - timedelta(days=FEE_WINDOW_DAYS))
            .where(DunningStep.status.not_in(["failed", "skipped"]))
            .group_by(DunningStep.tenant)
        ),
        _count_by_tenant(
            scope.select(DunningStep, DunningStep.tenant, Count(alias="n"))
            .where((DunningStep.status == "failed") & (DunningStep.run_date > week))
            .group_by(DunningStep.tenant)
        ),
        _count_by_tenant(
            scope.select(WebhookDelivery, WebhookDelivery.tenant, Count(alias="n"))
            .where(WebhookDelivery.status == "failed")
            .where(WebhookDelivery.created_at > _midnight(week))
            .group_by(WebhookDelivery.tenant)
        ),
    )
    for name, counts in (
        ("open_cases", open_cases),
        ("escalations_30d", escalated),
        ("fees_12m", fees),
        ("failed_contacts_7d", failed_contacts),
        ("failed_webhooks_7d", failed_hooks),
    ):
        for tenant, n in counts.items():
            out[tenant][name] = n
    live = await (
        scope.select(
            PolicyVersion,
            PolicyVersion.tenant,
            PolicyVersion.number,
            PolicyVersion.policy.name.as_alias("name"),
        )
        .where(PolicyVersion.status == "live")
        .order_by(PolicyVersion.policy.name)
    )
    for row in live:
        out[_key(row["tenant"])].setdefault("live_policies", []).append(
            f"{row['name']} v{row['number']}"
        )
    rows = await (
        scope.select(Simulation, Simulation.tenant, Max(Simulation.finished_at, alias="at"))
        .where(Simulation.status == "done")
        .group_by(Simulation.tenant)
    )
    for row in rows:
        out[_key(row["tenant"])]["last_simulation_at"] = _moment(row["at"])
    # The serving model of each tenant (its newest done fit) and its measured accuracy: a few
    # rows per tenant, newest first, so the first seen per tenant is the one that serves.
    models = await (
        scope.select(TenantModel, TenantModel.tenant, TenantModel.fitted_at, TenantModel.summary)
        .where(TenantModel.status == "done")
        .order_by(TenantModel.fitted_at, ascending=False)
    )
    for row in models:
        found = out[_key(row["tenant"])]
        if "model_fitted_at" in found:
            continue
        found["model_fitted_at"] = _moment(row["fitted_at"])
        backtest = _backtest(row["summary"])
        if backtest is not None:
            found["model_mae_pp"] = backtest.get("mae_pp")
            found["model_skill"] = backtest.get("skill")
    return dict(out)


def _backtest(summary: str) -> dict[str, Any] | None:
    import json

    try:
        backtest = json.loads(summary or "{}").get("backtest")
    except (ValueError, AttributeError):
        return None
    return backtest if isinstance(backtest, dict) else None


def _moment(value: Any) -> Any:
    """An aggregate's timestamp: SQLite answers MAX() of one as text, in UTC."""
    from datetime import UTC, datetime

    if isinstance(value, str):
        moment = datetime.fromisoformat(value)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return value


def _midnight(day: date) -> Any:
    from datetime import UTC, datetime, time

    return datetime.combine(day, time(), tzinfo=UTC)


TREND = {
    "invoiced": book_months.INVOICED,
    "cash_in": book_months.CASH_IN,
    "fees": book_months.FEES,
}


Months = dict[tuple[int, int], dict[str, int]]


@sums
async def monthly(scope: Scope, as_of: date, months: int) -> dict[str, list[dict[str, Any]]]:
    """Invoiced, cash in and fees per calendar month, the last `months` up to `as_of`, per
    currency (the clients of one currency summed; kronor and euros are never added up).

    The months before `as_of`'s are read from `book_months` (a few rows per tenant and
    month, kept by the database's triggers), `as_of`'s own month from the book up to that
    day: the same figures as `monthly_from_book`, a hundredfold fewer rows read."""
    first = _month_start(as_of, months - 1)
    current = _month_start(as_of, 0)
    currencies = await _currencies(scope)
    series = {c: _empty_months(first, as_of) for c in sorted(set(currencies.values()))}
    rows = await (
        scope.select(
            BookMonth,
            BookMonth.tenant,
            BookMonth.month,
            BookMonth.measure,
            Sum(BookMonth.value, alias="total"),
        )
        .where((BookMonth.month >= first) & (BookMonth.month < current))
        .where(BookMonth.measure.is_in(list(TREND.values())))
        .group_by(BookMonth.tenant, BookMonth.month, BookMonth.measure)
    )
    names = {measure: name for name, measure in TREND.items()}
    for row in rows:
        currency = currencies.get(_key(row["tenant"]))
        if currency is None:  # a tenant onboarded since the currencies were read
            continue
        when = _date(row["month"])
        series[currency][(when.year, when.month)][names[row["measure"]]] += int(row["total"] or 0)
    await _sum_days(scope, currencies, series, current, as_of)
    return {currency: _series(months) for currency, months in series.items()}


@sums
async def monthly_from_book(
    scope: Scope, as_of: date, months: int
) -> dict[str, list[dict[str, Any]]]:
    """`monthly` summed from the invoices, payments and steps themselves: the reference
    the rollup is held to (tests), and what `monthly` reads for the month under way."""
    first = _month_start(as_of, months - 1)
    currencies = await _currencies(scope)
    series = {c: _empty_months(first, as_of) for c in sorted(set(currencies.values()))}
    await _sum_days(scope, currencies, series, first, as_of)
    return {currency: _series(months) for currency, months in series.items()}


async def _currencies(scope: Scope) -> dict[str, str]:
    """Each tenant's currency (keys: tenant id text), fixed at onboarding: every row of a
    tenant's book is in it (ingest refuses any other)."""
    if isinstance(scope, TenantScope):
        return {_key(scope.tenant_id): scope.currency}
    return {_key(r["id"]): r["currency"] for r in await Tenant.select(Tenant.id, Tenant.currency)}


def _empty_months(first: date, last: date) -> Months:
    series: Months = {}
    cursor = first
    while cursor <= last:
        series[(cursor.year, cursor.month)] = dict.fromkeys(TREND, 0)
        cursor = _month_start(cursor, -1)
    return series


def _series(series: Months) -> list[dict[str, Any]]:
    return [{"month": f"{y:04d}-{m:02d}", **values} for (y, m), values in sorted(series.items())]


async def _sum_days(
    scope: Scope,
    currencies: dict[str, str],
    series: dict[str, Months],
    first: date,
    last: date,
) -> None:
    """Add the book's invoiced, cash in and fees of the days `first` … `last` to each
    tenant's currency's `series`."""
    for table, day, amount, name, extra in (
        (Invoice, Invoice.issue_date, Invoice.amount, "invoiced", Invoice.origin == "live"),
        (Payment, Payment.paid_date, Payment.amount, "cash_in", None),
        (
            DunningStep,
            DunningStep.run_date,
            DunningStep.fee,
            "fees",
            DunningStep.status.not_in(["failed", "skipped"]),
        ),
    ):
        # Grouped by the day itself and the tenant (the covering index's own order: no
        # expression per row), the days then summed into months here: at most 31 rows a
        # month per table and tenant.
        query = (
            scope.select(
                table,
                table.tenant.as_alias("tenant"),
                day.as_alias("day"),
                Sum(amount, alias="total"),
            )
            .where((day >= first) & (day <= last))
            .group_by(day, table.tenant)
        )
        if extra is not None:
            query = query.where(extra)
        for row in await query:
            currency = currencies.get(_key(row["tenant"]))
            when = _date(row["day"])
            key = (when.year, when.month)
            if currency is not None and key in series[currency]:
                series[currency][key][name] += int(row["total"] or 0)


def _cohort_months(as_of: date, cohorts: int) -> list[date]:
    """The first days of the `cohorts` months before `as_of`'s: every invoice due in them
    is past due on `as_of`."""
    return [_month_start(as_of, back) for back in range(cohorts, 0, -1)]


def _curves(
    as_of: date,
    months: list[date],
    due: dict[tuple[str, date], int],
    paid: dict[tuple[str, date, int], int],
    tenants: set[str],
) -> dict[str, list[dict[str, Any]]]:
    """Each tenant's cohorts, oldest first: amount due in the month, and for each day after
    due that every invoice of the cohort has passed, what had been paid by then."""
    out: dict[str, list[dict[str, Any]]] = {}
    for tenant in tenants:
        cohorts = []
        for month in months:
            last_day = _month_start(month, -1) - timedelta(days=1)
            amount = due.get((tenant, month), 0)
            points, running = [], 0
            for day in book_months.RECOVERY_DAYS:
                running += paid.get((tenant, month, day), 0)
                if last_day + timedelta(days=day) >= as_of:
                    break  # the cohort's last invoices have not reached this day yet
                share = round(running / amount, 4) if amount > 0 else None
                points.append({"day": day, "paid": running, "share": share})
            cohorts.append({"month": f"{month:%Y-%m}", "amount": amount, "points": points})
        out[tenant] = cohorts
    return out


def no_recovery(as_of: date, cohorts: int = RECOVERY_COHORTS) -> list[dict[str, Any]]:
    """The cohorts of a tenant with no invoice due in them: amounts 0, shares unknown."""
    return _curves(as_of, _cohort_months(as_of, cohorts), {}, {}, {""})[""]


@sums
async def recovery(
    scope: Scope, as_of: date, cohorts: int = RECOVERY_COHORTS
) -> dict[str, list[dict[str, Any]]]:
    """Recovery curves of the recent monthly due-date cohorts, per tenant (keys: tenant id
    text): of the amount of live invoices due in each of the `cohorts` months before
    `as_of`'s, the share paid by day 0, 30, 60 and 90 after due (the days the whole
    cohort has reached). Read from `book_months`; equal to `recovery_from_book`."""
    months = _cohort_months(as_of, cohorts)
    measures = {measure: day for day, measure in book_months.PAID_BY.items()}
    rows = await (
        scope.select(
            BookMonth,
            BookMonth.tenant,
            BookMonth.month,
            BookMonth.measure,
            Sum(BookMonth.value, alias="total"),
        )
        .where((BookMonth.month >= months[0]) & (BookMonth.month <= months[-1]))
        .where(BookMonth.measure.is_in([book_months.DUE, *measures]))
        .group_by(BookMonth.tenant, BookMonth.month, BookMonth.measure)
    )
    due: dict[tuple[str, date], int] = {}
    paid: dict[tuple[str, date, int], int] = {}
    for row in rows:
        tenant, month, total = _key(row["tenant"]), _date(row["month"]), int(row["total"] or 0)
        if not total:  # a key whose rows cancel out (SQLite keeps such a row)
            continue
        if row["measure"] == book_months.DUE:
            due[(tenant, month)] = total
        else:
            paid[(tenant, month, measures[row["measure"]])] = total
    return _curves(as_of, months, due, paid, _tenants(due, paid))


def _tenants(due: dict[tuple[str, date], int], paid: dict[tuple[str, date, int], int]) -> set[str]:
    """The tenants with a cohort figure that is not 0: the others get `no_recovery`."""
    return {k[0] for k, v in due.items() if v} | {k[0] for k, v in paid.items() if v}


@sums
async def recovery_from_book(
    scope: Scope, as_of: date, cohorts: int = RECOVERY_COHORTS
) -> dict[str, list[dict[str, Any]]]:
    """`recovery` summed from the invoices and their payments themselves (the reference)."""
    months = _cohort_months(as_of, cohorts)
    end = _month_start(as_of, 0) - timedelta(days=1)
    invoices = await (
        scope.select(Invoice, Invoice.tenant, Invoice.due_date, Sum(Invoice.amount, alias="n"))
        .where((Invoice.origin == "live") & (Invoice.due_date >= months[0]))
        .where(Invoice.due_date <= end)
        .group_by(Invoice.tenant, Invoice.due_date)
    )
    payments = await (
        scope.select(
            Payment,
            Payment.tenant,
            Payment.invoice.due_date.as_alias("due"),
            Payment.paid_date,
            Sum(Payment.amount, alias="n"),
        )
        .where((Payment.invoice.origin == "live") & (Payment.invoice.due_date >= months[0]))
        .where(Payment.invoice.due_date <= end)
        .group_by(Payment.tenant, Payment.invoice.due_date, Payment.paid_date)
    )
    due: dict[tuple[str, date], int] = defaultdict(int)
    paid: dict[tuple[str, date, int], int] = defaultdict(int)
    for row in invoices:
        when = _date(row["due_date"])
        due[(_key(row["tenant"]), _month_start(when, 0))] += int(row["n"] or 0)
    for row in payments:
        when = _date(row["due"])
        late = (_date(row["paid_date"]) - when).days
        day = next((d for d in book_months.RECOVERY_DAYS if late <= d), None)
        if day is not None:
            paid[(_key(row["tenant"]), _month_start(when, 0), day)] += int(row["n"] or 0)
    return _curves(as_of, months, due, paid, _tenants(due, paid))


def _date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _month_start(day: date, back: int) -> date:
    """The first day of the month `back` months before `day`'s (negative: after)."""
    index = day.year * 12 + day.month - 1 - back
    return date(index // 12, index % 12 + 1, 1)


def tenant_key(tenant_id: UUID) -> str:
    return _key(tenant_id)
