"""An invoice's statement of account on a day: fees, interest and principal after its payments.

This is where interest and allocation meet. Each payment is split by `allocation.allocate`
(fees, then interest, then principal unless told otherwise) over what is owed on its day,
including the interest accrued until then, so only the part that reaches the principal stops
interest, and from the payment's day on (`interest.late_interest`'s conventions).

Rounding: interest is rounded once per accrual period, that is between two payments (and
from the last payment to the statement's day), because a payment must be split in whole
minor units on its day; over a period without payments this is the single rounding of
`late_interest`.

Unknown interest: when a period needs a half-year's reference rate that the table lacks, the
statement says so (`interest_known` False, the half-years named). Its figures then count only
the known days, and the split of any later payment rests on them, so none of its interest
and principal figures may be shown as final.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from backend.allocation import DEFAULT_ORDER, Order, Owed, allocate
from backend.interest import SEEDED_RATES, InterestTerms, ReferenceRates, late_interest
from simulator.rules import SWEDEN, Rules

Dated = Sequence[tuple[date, int]]


@dataclass(frozen=True)
class Statement:
    on: date
    owed: Owed  # what is still outstanding on `on`
    paid: Owed  # what the payments went to, part by part
    overpayment: int  # paid beyond what was owed on each payment's day
    interest_known: bool
    missing_half_years: tuple[date, ...]
    principal: tuple[tuple[date, int], ...]  # the outstanding principal from each day on


def statement(
    amount: int,
    due_date: date,
    on: date,
    terms: InterestTerms,
    rates: ReferenceRates = SEEDED_RATES,
    fees: Dated = (),
    payments: Dated = (),
    order: Order = DEFAULT_ORDER,
    rules: Rules = SWEDEN,
) -> Statement:
    """The account of one invoice of `amount` due on `due_date`, as it stands on `on`.

    `fees` are (day charged, amount) and `payments` (day paid, amount); those after `on` are
    left out. Payments on one day are applied in the order given.
    """
    if amount < 0 or any(x < 0 for _, x in (*fees, *payments)):
        raise ValueError("amounts are never negative")
    principal, interest_owed, fees_owed = amount, 0, 0
    paid = {"fees": 0, "interest": 0, "principal": 0}
    overpayment = 0
    schedule = [(due_date, amount)]
    missing: set[date] = set()
    known = True
    accrued_to = due_date
    pending_fees = sorted((d, x) for d, x in fees if d <= on)

    def accrue(until: date) -> None:
        nonlocal interest_owed, accrued_to, known
        if until <= accrued_to:
            return
        result = late_interest(principal, accrued_to, until, terms, rates, rules)
        interest_owed += result.known_amount
        known = known and result.known
        missing.update(result.missing_half_years)
        accrued_to = until

    def charge_fees(until: date) -> None:
        nonlocal fees_owed
        while pending_fees and pending_fees[0][0] <= until:
            fees_owed += pending_fees.pop(0)[1]

    for day, payment in sorted((p for p in payments if p[0] <= on), key=lambda p: p[0]):
        accrue(day)
        charge_fees(day)
        split = allocate(Owed(fees_owed, interest_owed, principal), payment, order)
        fees_owed, interest_owed = split.remaining.fees, split.remaining.interest
        paid["fees"] += split.fees
        paid["interest"] += split.interest
        paid["principal"] += split.principal
        overpayment += split.overpayment
        if split.principal:
            principal = split.remaining.principal
            schedule.append((max(day, due_date), principal))
    accrue(on)
    charge_fees(on)
    return Statement(
        on=on,
        owed=Owed(fees_owed, interest_owed, principal),
        paid=Owed(**paid),
        overpayment=overpayment,
        interest_known=known,
        missing_half_years=tuple(sorted(missing)),
        principal=tuple(schedule),
    )
