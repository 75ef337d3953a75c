"""Late interest (dröjsmålsränta) as exact integer minor units, per day across half-years.

The law's figures are not repeated here: the statutory margin is `Rules.statutory_margin_bp`
and the seed table of reference rates is `simulator.rules.REFERENCE_RATE_BP`; the service
keeps the live table in the database (`backend.reference_rates`).

Conventions, stated once:

- **Period.** Interest runs from the due date (räntelagen 6 §): a day `d` accrues when
  `start <= d < end`, so an invoice paid `n` days after its due date carries `n` days of
  interest, and a payment made on day `p` stops interest on what it paid from day `p` on.
- **Rate.** Statutory: the Riksbank reference rate in force for the half-year holding the day
  (räntelagen 9 §: set every 1 January and 1 July) plus the margin; contract: the agreed
  annual rate; none: zero. A negative total rate counts as zero: lateness never makes the
  creditor owe the debtor.
- **Day basis.** Actual/365: each day is 1/365 of the annual rate, leap years included.
- **Rounding.** The sum over days is kept as an exact rational (one integer numerator over
  10 000 × 365) and rounded once, half up, to a minor unit. Interest over [a, c] therefore
  equals [a, b] + [b, c] within one minor unit, and it is monotone in time and in principal.
- **Unknown.** A day whose half-year has no reference-rate row is *unknown*, never zero: the
  result names the missing half-years and leaves `amount` None. A day with nothing outstanding
  needs no rate, so a missing row there changes nothing.

.. math:: I = \\operatorname{round}_{1/2\\uparrow}\\Big(\\sum_{d=start}^{end-1}
          \\frac{P(d)\\,\\max(0, r(d))}{10\\,000 \\cdot 365}\\Big)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from itertools import pairwise
from typing import Literal

from simulator.policy import Policy
from simulator.rules import REFERENCE_RATE_BP, SWEDEN, Rules

InterestMode = Literal["statutory", "contract", "none"]
BASIS_POINTS = 10_000
DAYS_PER_YEAR = 365
DENOMINATOR = BASIS_POINTS * DAYS_PER_YEAR


def half_year_start(day: date) -> date:
    """The 1 January or 1 July a reference rate for `day` applies from."""
    return date(day.year, 1 if day.month < 7 else 7, 1)


def next_half_year(start: date) -> date:
    return date(start.year, 7, 1) if start.month < 7 else date(start.year + 1, 1, 1)


def is_half_year_start(day: date) -> bool:
    return day.day == 1 and day.month in (1, 7)


@dataclass(frozen=True)
class ReferenceRates:
    """Reference rates by the half-year they apply to; a half-year without a row is unknown.

    Unlike a table read as "the last row before this day", a gap is never filled with the
    previous half-year's rate: a stale rate is a wrong figure on a debtor's letter.
    """

    by_half_year: Mapping[date, int] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[date | str, int]]) -> ReferenceRates:
        table: dict[date, int] = {}
        for start, rate_bp in rows:
            day = date.fromisoformat(start) if isinstance(start, str) else start
            if not is_half_year_start(day):
                raise ValueError(f"a reference rate applies from 1 January or 1 July, not {day}")
            table[day] = rate_bp
        return cls(table)

    def rate_bp(self, day: date) -> int | None:
        return self.by_half_year.get(half_year_start(day))


# The rows simulator/rules.py carries; the service's table starts from them (see migration).
SEEDED_RATES = ReferenceRates.from_rows(REFERENCE_RATE_BP)


@dataclass(frozen=True)
class InterestTerms:
    mode: InterestMode = "statutory"
    contract_rate_bp: int | None = None

    def __post_init__(self) -> None:
        if self.mode == "contract" and self.contract_rate_bp is None:
            raise ValueError("a contract rate needs contract_rate_bp")

    @classmethod
    def of(cls, policy: Policy) -> InterestTerms:
        mode: InterestMode = policy.interest_mode  # type: ignore[assignment]
        return cls(mode, policy.interest_annual_rate_bp)

    def annual_rate_bp(self, day: date, rates: ReferenceRates, rules: Rules = SWEDEN) -> int | None:
        """The annual rate on `day`, None when the statutory rate's half-year is unknown."""
        if self.mode == "none":
            return 0
        if self.mode == "contract":
            assert self.contract_rate_bp is not None
            return max(0, self.contract_rate_bp)
        reference = rates.rate_bp(day)
        return None if reference is None else max(0, reference + rules.statutory_margin_bp)


# Outstanding principal as a step function: (from this day on, this much), in day order.
Principal = int | Sequence[tuple[date, int]]


@dataclass(frozen=True)
class Interest:
    """Interest over a period; `amount` is None when any day of it is unknown."""

    amount: int | None
    known_amount: int  # over the days whose rate is known, rounded the same way
    days: int
    unknown_days: int = 0
    missing_half_years: tuple[date, ...] = ()

    @property
    def known(self) -> bool:
        return self.amount is not None


def _schedule(principal: Principal) -> list[tuple[date, int]]:
    steps = [(date.min, principal)] if isinstance(principal, int) else list(principal)
    for (a, _), (b, _) in pairwise(steps):
        if b < a:
            raise ValueError("principal changes must be in day order")
    if any(amount < 0 for _, amount in steps):
        raise ValueError("outstanding principal is never negative")
    return steps


def _outstanding(steps: list[tuple[date, int]], day: date) -> int:
    amount = 0
    for start, value in steps:
        if start > day:
            break
        amount = value
    return amount


def _round_half_up(numerator: int) -> int:
    return (2 * numerator + DENOMINATOR) // (2 * DENOMINATOR)


def late_interest(
    principal: Principal,
    start: date,
    end: date,
    terms: InterestTerms,
    rates: ReferenceRates = SEEDED_RATES,
    rules: Rules = SWEDEN,
) -> Interest:
    """Interest on `principal` for the days `start <= d < end` (see the module's conventions).

    `principal` is a constant or a step function `[(from_day, outstanding), ...]` (zero before
    its first day), so partial payments lower it from the day they are made.
    """
    if end < start:
        raise ValueError(f"the period ends ({end}) before it starts ({start})")
    steps = _schedule(principal)
    cuts = {start, end}
    cuts.update(day for day, _ in steps if start < day < end)
    if terms.mode == "statutory":
        boundary = next_half_year(half_year_start(start))
        while boundary < end:
            cuts.add(boundary)
            boundary = next_half_year(boundary)
    known_numerator = 0
    unknown_days = 0
    missing: set[date] = set()
    ordered = sorted(cuts)
    for a, b in pairwise(ordered):
        outstanding = _outstanding(steps, a)
        if outstanding == 0:
            continue
        rate = terms.annual_rate_bp(a, rates, rules)
        days = (b - a).days
        if rate is None:
            unknown_days += days
            missing.add(half_year_start(a))
            continue
        known_numerator += outstanding * rate * days
    known_amount = _round_half_up(known_numerator)
    return Interest(
        amount=None if unknown_days else known_amount,
        known_amount=known_amount,
        days=(end - start).days,
        unknown_days=unknown_days,
        missing_half_years=tuple(sorted(missing)),
    )


def rate_days(
    start: date,
    end: date,
    terms: InterestTerms,
    rates: ReferenceRates = SEEDED_RATES,
    rules: Rules = SWEDEN,
) -> int | None:
    """Σ rate (bp) × days over `start <= d < end`, None when any of its days is unknown.

    The interest on a constant principal P over the period is then exactly
    `round_half_up(P × rate_days)` over `DENOMINATOR`, the same figure as `late_interest(P,
    …)` for any P > 0: the dunning run computes it in SQL for every invoice without
    payments, one due date at a time, instead of once per invoice in Python.
    """
    if end < start:
        raise ValueError(f"the period ends ({end}) before it starts ({start})")
    cuts = {start, end}
    if terms.mode == "statutory":
        boundary = next_half_year(half_year_start(start))
        while boundary < end:
            cuts.add(boundary)
            boundary = next_half_year(boundary)
    total = 0
    for a, b in pairwise(sorted(cuts)):
        rate = terms.annual_rate_bp(a, rates, rules)
        if rate is None:
            return None
        total += rate * (b - a).days
    return total
