"""Fees, late interest, allocation and the statement of account: properties and worked cases.

The interest oracle here is deliberately naive (one exact Fraction per day, the rate looked up
with `simulator.rules.reference_rate_bp`), so the segment arithmetic of `backend.interest`
is checked against an independent reading of the same rules.
"""

from __future__ import annotations

from datetime import date, timedelta
from fractions import Fraction
from itertools import pairwise, permutations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.allocation import DEFAULT_ORDER, Owed, allocate
from backend.fees import Charged, FeeState, fee_for_step, fee_to_charge
from backend.interest import (
    DENOMINATOR,
    SEEDED_RATES,
    InterestTerms,
    ReferenceRates,
    half_year_start,
    late_interest,
    rate_days,
)
from backend.statement import statement
from simulator.policy import Policy, Segment, Step
from simulator.rules import REFERENCE_RATE_BP, SWEDEN, reference_rate_bp

STATUTORY = InterestTerms()
# Days whose half-year the seeded table covers; the half-year from 2026-07-01 is missing.
KNOWN_FROM, KNOWN_UNTIL = date(2022, 1, 1), date(2026, 7, 1)

settings.register_profile("money", max_examples=300, deadline=None)
settings.load_profile("money")

known_days = st.dates(KNOWN_FROM, KNOWN_UNTIL - timedelta(days=1))
amounts = st.integers(0, 10**11)  # up to a billion kronor in öre


# ---- fees -----------------------------------------------------------------------------


steps = st.lists(
    st.tuples(
        st.sampled_from(["reminder", "collection_notice"]),
        st.integers(-15, 120),  # day relative to the due date
        st.integers(0, 40_000),  # the step's fee, above the caps too
    ),
    max_size=8,
).map(lambda xs: sorted(xs, key=lambda x: x[1]))


@given(
    debtor_type=st.sampled_from(["b2b", "b2c"]),
    fee_agreed=st.booleans(),
    compensation=st.booleans(),
    already=st.tuples(st.sampled_from([0, 1_000, 6_000]), st.sampled_from([0, 5_000, 18_000])),
    flow=steps,
)
def test_fees_are_once_capped_after_due_and_compensation_replaces_them(
    debtor_type, fee_agreed, compensation, already, flow
):
    due = date(2025, 3, 31)
    charged = Charged(reminder_fee=already[0], collection_fee=already[1])
    decisions = []
    for action, day, fee in flow:
        on = due + timedelta(days=day)
        decision = fee_to_charge(
            FeeState(debtor_type, fee_agreed, due, charged), action, on, fee, compensation
        )
        assert decision.amount >= 0 and (decision.amount > 0) == (decision.kind is not None)
        if decision.kind:
            assert day > 0, "no fee on or before the due date"
            decisions.append(decision)
        charged = charged.plus(decision)
    kinds = [d.kind for d in decisions]
    for kind in ("reminder_fee", "collection_fee", "compensation"):
        assert kinds.count(kind) <= 1, f"{kind} charged twice"
    new_reminder = sum(d.amount for d in decisions if d.kind == "reminder_fee")
    new_collection = sum(d.amount for d in decisions if d.kind == "collection_fee")
    assert new_reminder <= SWEDEN.reminder_fee_cap
    assert new_collection <= SWEDEN.collection_fee_cap
    if new_reminder:
        assert fee_agreed and already[0] == 0
    if new_collection:
        assert already[1] == 0
    if debtor_type == "b2c":
        assert charged.compensation == 0, "never compensation for a consumer"
    if charged.compensation:
        assert debtor_type == "b2b" and compensation
        # Instead of the fees: together never more than the compensation alone...
        assert charged.total == max(SWEDEN.b2b_compensation, charged.fees)
        # ...and no fee after it.
        assert kinds[kinds.index("compensation") + 1 :].count("reminder_fee") == 0
        assert kinds[kinds.index("compensation") + 1 :].count("collection_fee") == 0
    if compensation and debtor_type == "b2b":
        assert new_reminder == new_collection == 0
        if any(day > 0 for _, day, _ in flow) and already == (0, 0):
            assert charged.compensation == SWEDEN.b2b_compensation


def test_fee_cases_worked_by_hand():
    due = date(2025, 5, 31)
    state = FeeState("b2c", True, due)
    reminder = fee_to_charge(state, "reminder", due + timedelta(days=5), 8_000)
    assert (reminder.kind, reminder.amount, reminder.reason) == ("reminder_fee", 6_000, "capped")
    assert fee_to_charge(state, "reminder", due, 5_000).reason == "not_overdue"
    assert fee_to_charge(
        FeeState("b2c", False, due), "reminder", date(2025, 6, 9), 5_000
    ).reason == ("fee_not_agreed")
    # A collection fee needs no prior agreement.
    notice = fee_to_charge(
        FeeState("b2c", False, due), "collection_notice", date(2025, 7, 1), 18_000
    )
    assert (notice.kind, notice.amount) == ("collection_fee", 18_000)
    # A reminder fee charged before B2B compensation became due is deducted from it.
    b2b = FeeState("b2b", True, due, Charged(reminder_fee=6_000))
    comp = fee_to_charge(b2b, "collection_notice", date(2025, 7, 1), 0, compensation=True)
    assert (comp.kind, comp.amount, comp.reason) == (
        "compensation",
        39_000,
        "compensation_reduced_by_fees",
    )
    assert "instead" in comp.explanation
    # A consumer never owes compensation, even when a policy asks for it.
    consumer = fee_to_charge(state, "reminder", date(2025, 6, 9), 0, compensation=True)
    assert consumer.kind is None
    policy = Policy("b2b", Segment("b2b"), (Step(10, "reminder", "email"),), compensation=True)
    step = fee_for_step(FeeState("b2b", False, due), policy, policy.steps[0], date(2025, 6, 10))
    assert (step.kind, step.amount) == ("compensation", SWEDEN.b2b_compensation)
    with pytest.raises(ValueError):
        fee_to_charge(state, "phone_call", date(2025, 6, 9), 0)


# ---- interest -------------------------------------------------------------------------


def naive_interest(schedule, start, end, terms) -> int | None:
    """One Fraction per day, the reference rate from simulator.rules, rounded once half up."""
    total = Fraction(0)
    day = start
    while day < end:
        outstanding = 0
        for since, value in schedule:
            if since <= day:
                outstanding = value
        if outstanding:
            if terms.mode == "contract":
                rate = terms.contract_rate_bp
            else:
                reference = reference_rate_bp(day.isoformat())
                if reference is None:
                    return None
                rate = reference + SWEDEN.statutory_margin_bp
            total += Fraction(outstanding * max(rate, 0), 10_000 * 365)
        day += timedelta(days=1)
    return int(total + Fraction(1, 2)) if total >= 0 else None


schedules = st.lists(st.tuples(known_days, amounts), min_size=1, max_size=5).map(
    lambda xs: sorted(xs, key=lambda x: x[0])
)


@given(schedule=schedules, a=known_days, b=known_days)
@settings(max_examples=120)
def test_interest_matches_a_day_by_day_exact_sum(schedule, a, b):
    start, end = min(a, b), max(a, b)
    result = late_interest(schedule, start, end, STATUTORY)
    assert result.amount == naive_interest(schedule, start, end, STATUTORY)
    assert result.days == (end - start).days and result.unknown_days == 0


@given(principal=amounts, a=known_days, b=known_days, c=known_days)
def test_interest_is_additive_within_one_minor_unit(principal, a, b, c):
    a, b, c = sorted((a, b, c))
    whole = late_interest(principal, a, c, STATUTORY).amount
    first = late_interest(principal, a, b, STATUTORY).amount
    second = late_interest(principal, b, c, STATUTORY).amount
    assert whole is not None and first is not None and second is not None
    assert abs(whole - first - second) <= 1


@given(schedule=schedules, extra=amounts, a=known_days, b=known_days, c=known_days)
def test_interest_is_never_negative_and_monotone_in_time_and_principal(schedule, extra, a, b, c):
    start, mid, end = sorted((a, b, c))
    shorter = late_interest(schedule, start, mid, STATUTORY).amount
    longer = late_interest(schedule, start, end, STATUTORY).amount
    assert shorter is not None and longer is not None
    assert 0 <= shorter <= longer
    larger = [(day, value + extra) for day, value in schedule]
    assert late_interest(larger, start, end, STATUTORY).amount >= longer


@given(principal=st.integers(1, 10**11), start=known_days, days=st.integers(1, 800))
def test_a_missing_half_year_makes_interest_unknown_never_zero(principal, start, days):
    end = start + timedelta(days=days)
    result = late_interest(principal, start, end, STATUTORY)
    if end > KNOWN_UNTIL:
        assert result.amount is None and not result.known
        assert result.missing_half_years[0] == KNOWN_UNTIL
        assert result.unknown_days == (end - KNOWN_UNTIL).days
        assert result.known_amount == late_interest(principal, start, KNOWN_UNTIL, STATUTORY).amount
    else:
        assert result.known and result.missing_half_years == ()
    # Nothing outstanding over the missing days: nothing to know.
    paid_off = late_interest([(start, principal), (KNOWN_UNTIL, 0)], start, end, STATUTORY)
    assert paid_off.known


def test_a_gap_in_the_table_is_not_filled_with_the_previous_rate():
    rows = [r for r in REFERENCE_RATE_BP if r[0] != "2024-01-01"]
    result = late_interest(
        100_000, date(2023, 12, 1), date(2024, 8, 1), STATUTORY, ReferenceRates.from_rows(rows)
    )
    assert result.amount is None and result.missing_half_years == (date(2024, 1, 1),)
    assert result.unknown_days == 182  # 2024 is a leap year


def test_interest_cases_worked_by_hand():
    # 2025: 2.50 % + 8 pp for 181 days, then 2.00 % + 8 pp for 184 days, on 1 000 kr:
    # 100 000 × (1050 × 181 + 1000 × 184) / 3 650 000 = 10 247.95… → 10 248 öre.
    assert late_interest(100_000, date(2025, 1, 1), date(2026, 1, 1), STATUTORY).amount == 10_248
    # A contract rate needs no reference rate, even past the table's end.
    contract = InterestTerms("contract", 1_200)
    assert late_interest(365_000, date(2030, 1, 1), date(2030, 1, 11), contract).amount == 1_200
    assert (
        late_interest(100_000, date(2030, 1, 1), date(2031, 1, 1), InterestTerms("none")).amount
        == 0
    )
    assert late_interest(100_000, date(2025, 3, 1), date(2025, 3, 1), STATUTORY).amount == 0
    with pytest.raises(ValueError):
        late_interest(100_000, date(2025, 3, 2), date(2025, 3, 1), STATUTORY)
    with pytest.raises(ValueError):
        ReferenceRates.from_rows([("2025-02-01", 100)])


def test_the_seeded_table_reads_as_simulator_rules_does():
    day = date(2022, 1, 1)
    while day < date(2027, 1, 1):
        assert SEEDED_RATES.rate_bp(day) == reference_rate_bp(day.isoformat()), day
        day += timedelta(days=1)
    assert half_year_start(date(2026, 11, 23)) == date(2026, 7, 1)


# ---- allocation -----------------------------------------------------------------------

orders = st.sampled_from(list(permutations(DEFAULT_ORDER)))
small = st.integers(0, 10**9)


@given(fees=small, interest=small, principal=small, payment=st.integers(0, 4 * 10**9), order=orders)
def test_allocation_sums_to_the_payment_and_follows_its_order(
    fees, interest, principal, payment, order
):
    owed = Owed(fees, interest, principal)
    split = allocate(owed, payment, order)
    parts = {"fees": split.fees, "interest": split.interest, "principal": split.principal}
    assert min(*parts.values(), split.overpayment) >= 0
    assert split.applied + split.overpayment == payment
    assert split.applied == min(payment, owed.total)
    assert split.overpayment == max(0, payment - owed.total)
    for part in order:
        assert parts[part] + getattr(split.remaining, part) == getattr(owed, part)
    # A part is paid only once every part before it in the order is paid in full.
    for earlier, later in pairwise(order):
        if parts[later]:
            assert getattr(split.remaining, earlier) == 0


def test_allocation_default_is_fees_then_interest_then_principal():
    split = allocate(Owed(fees=6_000, interest=1_500, principal=100_000), 10_000)
    assert (split.fees, split.interest, split.principal, split.overpayment) == (
        6_000,
        1_500,
        2_500,
        0,
    )
    assert split.remaining == Owed(0, 0, 97_500)
    with pytest.raises(ValueError):
        allocate(Owed(1, 1, 1), 5, ("fees", "fees", "principal"))
    with pytest.raises(ValueError):
        allocate(Owed(1, 1, 1), -5)


# ---- the statement of account ---------------------------------------------------------

payment_lists = st.lists(st.tuples(known_days, st.integers(0, 200_000)), max_size=6)


@given(
    amount=st.integers(0, 500_000),
    due=known_days,
    on=known_days,
    payments=payment_lists,
    fee=st.sampled_from([0, 6_000]),
)
def test_a_statement_accounts_for_every_payment(amount, due, on, payments, fee):
    fees = [(due + timedelta(days=10), fee)] if fee else []
    result = statement(amount, due, on, STATUTORY, fees=fees, payments=payments)
    counted = sum(x for d, x in payments if d <= on)
    assert result.paid.total + result.overpayment == counted
    assert result.paid.principal + result.owed.principal == amount
    assert min(result.owed.fees, result.owed.interest, result.owed.principal) >= 0
    assert all(b[1] <= a[1] for a, b in pairwise(result.principal))
    assert result.interest_known
    if not payments:
        expected = late_interest(amount, due, max(due, on), STATUTORY).amount
        assert result.owed.interest == expected and result.paid.total == 0


def test_a_partial_payment_pays_fees_and_interest_first_then_stops_interest_on_its_principal():
    due, paid_on, on = date(2025, 1, 31), date(2025, 3, 2), date(2025, 4, 1)
    result = statement(
        100_000, due, on, STATUTORY, fees=[(date(2025, 2, 10), 6_000)], payments=[(paid_on, 56_000)]
    )
    # 30 days at 10.50 % on 1 000 kr = 863.01… → 863 öre, paid with the 60 kr fee first.
    assert result.paid == Owed(fees=6_000, interest=863, principal=49_137)
    assert result.principal == ((due, 100_000), (paid_on, 50_863))
    # Then 30 more days on what is left: 50 863 × 1050 × 30 / 3 650 000 = 438.96… → 439.
    assert result.owed == Owed(fees=0, interest=439, principal=50_863)


def test_a_statement_over_a_missing_half_year_says_its_interest_is_unknown():
    result = statement(100_000, date(2026, 5, 31), date(2026, 9, 1), STATUTORY)
    assert not result.interest_known and result.missing_half_years == (date(2026, 7, 1),)


# ---- the dunning run's interest in SQL ---------------------------------------------------


@given(
    principal=amounts,
    due=st.dates(date(2021, 6, 1), date(2027, 3, 1)),
    days=st.integers(0, 1200),
    terms=st.sampled_from(
        [
            STATUTORY,
            InterestTerms("contract", 1250),
            InterestTerms("contract", 0),
            InterestTerms("none"),
        ]
    ),
)
def test_rate_days_gives_the_statement_figure_of_an_invoice_without_payments(
    principal, due, days, terms
):
    """What the run's UPDATE computes, round_half_up(amount × Σ rate × days), is the figure
    `statement` stores for an invoice without payments, unknown included."""
    on = due + timedelta(days=days)
    account = statement(principal, due, on, terms)
    product = rate_days(due, on, terms)
    if product is None:
        assert not account.interest_known or principal == 0
        return
    assert account.interest_known
    assert (2 * principal * product + DENOMINATOR) // (2 * DENOMINATOR) == account.owed.interest
