"""The agency's portfolio: every client at a glance, with the alerts that need a person.

The figures come from `figures` (summed by the database); this module puts one row per
client together, raises alerts, and sorts and filters the fifty-odd rows that result.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from backend import reference_rates
from frontend_api import figures
from tenants.scope import AgencyScope
from tenants.tables import Tenant

SORT_KEYS = (
    "name",
    "outstanding",
    "overdue",
    "d90_plus",
    "dso",
    "days_beyond_terms",
    "open_cases",
    "fees_12m",
    "alerts",
)


def _alerts(row: dict[str, Any], as_of: date) -> list[dict[str, str]]:
    alerts = []
    if row["failed_webhooks_7d"]:
        alerts.append(
            {
                "kind": "webhooks_failing",
                "message": f"{row['failed_webhooks_7d']} webhook deliveries gave up in 7 days",
            }
        )
    if row["failed_contacts_7d"]:
        alerts.append(
            {
                "kind": "channel_failing",
                "message": f"{row['failed_contacts_7d']} contacts failed to send in 7 days",
            }
        )
    if row["interest_unknown"]:
        alerts.append(
            {
                "kind": "interest_unknown",
                "message": f"late interest unknown on {row['interest_unknown']} invoices "
                "(a reference rate is missing)",
            }
        )
    if not row["live_policies"] and row["open_invoices"]:
        alerts.append({"kind": "no_live_policy", "message": "open invoices but no live policy"})
    fitted = row["model_fitted_at"]
    if fitted is None:
        alerts.append({"kind": "model_missing", "message": "no fitted payment model"})
    elif _aware(fitted).date() < as_of - timedelta(days=figures.MODEL_STALE_DAYS):
        alerts.append(
            {
                "kind": "model_stale",
                "message": f"payment model older than {figures.MODEL_STALE_DAYS} days",
            }
        )
    elif row["model_skill"] is not None and row["model_skill"] <= 0:
        alerts.append(
            {
                "kind": "model_no_skill",
                "message": "the payment model does not beat the naive forecast in its backtest",
            }
        )
    return alerts


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


async def portfolio(
    scope: AgencyScope,
    as_of: date,
    *,
    sort: str = "outstanding",
    descending: bool = True,
    q: str | None = None,
    with_alerts: bool | None = None,
) -> dict[str, Any]:
    tenants = await Tenant.select(
        Tenant.id, Tenant.name, Tenant.slug, Tenant.status, Tenant.currency
    ).order_by(Tenant.name)
    books, activity, curves, rate = await asyncio.gather(
        figures.books(scope, as_of),
        figures.activity(scope, as_of),
        figures.recovery(scope, as_of),
        reference_rates.missing_rate_alert(as_of),
    )
    rows = []
    # One set of totals per currency: the clients' books are summed only where they share it.
    totals: dict[str, figures.Book] = {}
    clients: dict[str, int] = defaultdict(int)
    for tenant in tenants:
        key = figures.tenant_key(tenant["id"])
        book = books.get(key, figures.Book())
        extra = activity.get(key, {})
        row: dict[str, Any] = {
            "tenant_id": tenant["id"],
            "name": tenant["name"],
            "slug": tenant["slug"],
            "status": tenant["status"],
            "currency": tenant["currency"],
            **_book_fields(book),
            "open_cases": extra.get("open_cases", 0),
            "escalations_30d": extra.get("escalations_30d", 0),
            "fees_12m": extra.get("fees_12m", 0),
            "failed_contacts_7d": extra.get("failed_contacts_7d", 0),
            "failed_webhooks_7d": extra.get("failed_webhooks_7d", 0),
            "interest_unknown": book.interest_unknown,
            "live_policies": extra.get("live_policies", []),
            "model_fitted_at": extra.get("model_fitted_at"),
            "model_mae_pp": extra.get("model_mae_pp"),
            "model_skill": extra.get("model_skill"),
            "last_simulation_at": extra.get("last_simulation_at"),
            "recovery": curves.get(key) or figures.no_recovery(as_of),
        }
        row["alerts"] = _alerts(row, as_of)
        if rate is not None:
            row["alerts"].append({"kind": "reference_rate_missing", "message": rate.message})
        rows.append(row)
        total = totals.setdefault(tenant["currency"], figures.Book())
        clients[tenant["currency"]] += 1
        total.outstanding += book.outstanding
        total.open_invoices += book.open_invoices
        total.invoiced_90d += book.invoiced_90d
        for bucket in figures.BUCKETS:
            total.ageing[bucket] += book.ageing[bucket]
            total.ageing_count[bucket] += book.ageing_count[bucket]
    if q:
        needle = q.casefold()
        rows = [r for r in rows if needle in r["name"].casefold() or needle in r["slug"]]
    if with_alerts is not None:
        rows = [r for r in rows if bool(r["alerts"]) == with_alerts]
    rows.sort(key=lambda r: r["name"].casefold())  # ties keep the name order
    rows.sort(key=lambda r: _sort_value(r, sort), reverse=descending)
    return {
        "as_of": as_of,
        "dso_method": figures.DSO_METHOD,
        "sort": sort,
        "order": "desc" if descending else "asc",
        "totals": [
            {"currency": currency, **_book_fields(totals[currency]), "clients": clients[currency]}
            for currency in sorted(totals)
        ],
        "clients": rows,
        "reference_rate_missing": rate.message if rate else None,
        "reference_rate_missing_from": rate.half_year if rate else None,
    }


def _sort_value(row: dict[str, Any], sort: str) -> Any:
    if sort == "name":
        return row["name"].casefold()
    if sort == "alerts":
        return len(row["alerts"])
    if sort == "d90_plus":
        return row["ageing"]["d90_plus"]
    value = row[sort]
    return float("-inf") if value is None else value  # unknown DSO sorts last when descending


def _book_fields(book: figures.Book) -> dict[str, Any]:
    return {
        "outstanding": book.outstanding,
        "overdue": book.overdue,
        "open_invoices": book.open_invoices,
        "ageing": dict(book.ageing),
        "ageing_count": dict(book.ageing_count),
        "invoiced_90d": book.invoiced_90d,
        "dso": book.dso,
        "best_possible_dso": book.best_possible_dso,
        "days_beyond_terms": book.days_beyond_terms,
    }


book_fields = _book_fields
