"""The reference-rate table as the service keeps it: read, add a half-year, alert on a gap.

The rows are agency data (one table for every tenant). A half-year is added once: a
correction is a deliberate act outside this API, never a second POST silently winning.
The rate for 1 January is decided by the policy rate at the end of December (räntelagen 9 §),
so a row is never accepted for a half-year after the next one: that would be a guess.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import uuid4

import asyncpg

from backend.interest import ReferenceRates, half_year_start, is_half_year_start, next_half_year
from backend.tables import ReferenceRate
from backend.validation import FieldError, InvalidInput
from tenants import audit, clock
from tenants.access import Principal
from tenants.onboarding import ConflictError
from tenants.transactions import write_transaction

# The Riksbank's reference rate replaced the discount rate (diskonto) on 1 July 2002.
FIRST_HALF_YEAR = date(2002, 7, 1)
# Basis points a reference rate may take; outside is a typo (it has been -0.50 % at its lowest).
RATE_RANGE_BP = (-500, 2_500)


@dataclass(frozen=True)
class RateAlert:
    """The half-year in force has no row: late interest over its days is unknown."""

    half_year: date

    @property
    def message(self) -> str:
        return (
            f"the reference rate for the half-year from {self.half_year} is missing: "
            "late interest for its days is unknown until an agency admin adds it"
        )


async def rows() -> list[dict[str, Any]]:
    return list(
        await ReferenceRate.select(ReferenceRate.valid_from, ReferenceRate.rate_bp).order_by(
            ReferenceRate.valid_from
        )
    )


async def load() -> ReferenceRates:
    """The table as interest reads it."""
    return ReferenceRates.from_rows((r["valid_from"], r["rate_bp"]) for r in await rows())


async def missing_rate_alert(today: date) -> RateAlert | None:
    """An alert when the half-year holding `today` has no row (the agency dashboard shows it)."""
    current = half_year_start(today)
    if await ReferenceRate.exists().where(ReferenceRate.valid_from == current):
        return None
    return RateAlert(current)


def check(valid_from: date, rate_bp: int, today: date) -> list[FieldError]:
    """Every reason a row may not be added, by field."""
    errors = []
    if not is_half_year_start(valid_from):
        errors.append(FieldError("valid_from", "a reference rate applies from 1 January or 1 July"))
    latest = next_half_year(half_year_start(today))
    if not FIRST_HALF_YEAR <= valid_from <= latest:
        errors.append(
            FieldError(
                "valid_from", f"must be between {FIRST_HALF_YEAR} and {latest} (the next half-year)"
            )
        )
    low, high = RATE_RANGE_BP
    if not low <= rate_bp <= high:
        errors.append(FieldError("rate_bp", f"must be between {low} and {high} basis points"))
    return errors


def _duplicate(exc: Exception) -> bool:
    return isinstance(exc, asyncpg.UniqueViolationError) or (
        isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc)
    )


async def add(valid_from: date, rate_bp: int, actor: Principal) -> dict[str, Any]:
    """Add one half-year's row with its audit entry; 409 when the half-year has one."""
    now = clock.now()
    errors = check(valid_from, rate_bp, now.date())
    if errors:
        raise InvalidInput(errors)
    conflict = ConflictError(f"the half-year from {valid_from} already has a reference rate")
    rate_id = uuid4()
    try:
        async with write_transaction():
            if await ReferenceRate.exists().where(ReferenceRate.valid_from == valid_from):
                raise conflict
            await ReferenceRate.insert(
                ReferenceRate(
                    id=rate_id,
                    valid_from=valid_from,
                    rate_bp=rate_bp,
                    created_at=now,
                    created_by=actor.actor,
                )
            )
            await audit.record(
                actor.actor,
                "reference_rate.add",
                "reference_rate",
                rate_id,
                None,
                valid_from=valid_from.isoformat(),
                rate_bp=rate_bp,
            )
    except Exception as exc:  # two admins racing past the check: the unique index decides
        if _duplicate(exc):
            raise conflict from exc
        raise
    return {"id": rate_id, "valid_from": valid_from, "rate_bp": rate_bp, "created_at": now}
