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
- days beyond terms (ADD): DSO − best possible DSO, the days lost to late payment.
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

from backend.tables import (
    CollectionCase,
    DunningStep,
    Invoice,
    Payment,
    PolicyVersion,
    Simulation,
    TenantModel,
    WebhookDelivery,
)

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


@sums
async def monthly(scope: Scope, as_of: date, months: int) -> list[dict[str, Any]]:
    """Invoiced, cash in and fees per calendar month, the last `months` up to `as_of`."""
    first = _month_start(as_of, months - 1)
    series: dict[tuple[int, int], dict[str, int]] = {}
    cursor = first
    while cursor <= as_of:
        series[(cursor.year, cursor.month)] = {"invoiced": 0, "cash_in": 0, "fees": 0}
        cursor = _month_start(cursor, -1)
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
        # Grouped by the day itself (the index's own order: no expression per row), the
        # days then summed into months here: at most 31 rows a month per table.
        query = (
            scope.select(table, day.as_alias("day"), Sum(amount, alias="total"))
            .where((day >= first) & (day <= as_of))
            .group_by(day)
        )
        if extra is not None:
            query = query.where(extra)
        for row in await query:
            when = _date(row["day"])
            key = (when.year, when.month)
            if key in series:
                series[key][name] += int(row["total"] or 0)
    return [{"month": f"{y:04d}-{m:02d}", **values} for (y, m), values in sorted(series.items())]


def _date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _month_start(day: date, back: int) -> date:
    """The first day of the month `back` months before `day`'s (negative: after)."""
    index = day.year * 12 + day.month - 1 - back
    return date(index // 12, index % 12 + 1, 1)


def tenant_key(tenant_id: UUID) -> str:
    return _key(tenant_id)
