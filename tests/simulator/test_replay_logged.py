"""`actual` as g-computation under the history's estimated contact routine (issue 9)."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.fit import fit, prepare, recorded_contacts
from simulator.forecast import ACTUAL, Cohort, Options, forecast
from simulator.history import NOT_SETTLED
from simulator.logging_policy import from_history, stratum_of
from simulator.model import CHANNELS
from simulator.worlds import generate
from tests.simulator.scenarios import BASELINE, CHANGES

DAYS = (30, 60, 90)


@pytest.fixture(scope="module")
def retail():
    world = generate("retail-b2c", 120_000, 3)
    return world, fit(prepare(world.history), 2)


def _observed_cohort(h, through: int) -> Cohort:
    """A year of invoices observed through `through` days after due."""
    due_to = h.as_of - through
    chosen = np.flatnonzero((h.due <= due_to) & (h.due > due_to - 365))
    return Cohort(chosen, due_to - 364, due_to)


def test_actual_and_every_policy_agree_before_the_first_contact(retail):
    world, model = retail
    h = world.history
    cohort = _observed_cohort(h, 90)
    candidates = {"actual": ACTUAL, "baseline": BASELINE, **CHANGES}
    result = forecast(h, model, candidates, cohort, Options(horizon=90, draws=8))
    first_recorded = int(recorded_contacts(h, cohort.invoices).day.min())
    first_step = min(s.day for c in candidates.values() if c != ACTUAL for p in c for s in p.steps)
    first = min(first_recorded, first_step)
    assert first == -3  # the world's pre-due email: a non-trivial stretch is compared
    curves = {name: r["cash_curve"] for name, r in result["results"].items()}
    compared = 0
    for name, curve in curves.items():
        for row, actual_row in zip(curve, curves["actual"], strict=True):
            if row[0] < first:
                # the same value up to the order of floating-point sums; the interval's
                # spread of the routine is measured on a subsample of its rows (cost)
                assert row[1] == pytest.approx(actual_row[1], rel=1e-9, abs=1e-12), (name, row[0])
                assert row[2:] == pytest.approx(actual_row[2:], rel=0.02), (name, row[0])
                compared += 1
    assert compared == (first + 30) * len(curves)
    # and they do differ once contacts start
    at = next(r for r in curves["no pre-due reminder"] if r[0] == 0)[1]
    assert abs(at - next(r for r in curves["actual"] if r[0] == 0)[1]) > 1e-3


def test_the_in_sample_actual_replay_reproduces_the_observed_curve(retail):
    world, model = retail
    h = world.history
    cohort = _observed_cohort(h, 90)
    result = forecast(h, model, {"actual": ACTUAL}, cohort, Options(horizon=90, draws=4))
    idx = cohort.invoices
    due = h.due[idx].astype(np.int64)
    settled = np.where(h.settled[idx] == NOT_SETTLED, 10**9, h.settled[idx] - due)
    for d in DAYS:
        observed = h.amount[idx][settled <= d].sum() / h.amount[idx].sum()
        replayed = result["results"]["actual"]["recovery"][str(d)]
        assert abs(replayed - observed) < 0.005, (d, replayed, observed)


def test_open_invoices_are_replayed_with_further_contacts(retail):
    """Invoices due in the last days before the as-of date had few contacts yet: the
    routine keeps contacting them in the replay."""
    world, model = retail
    h = world.history
    recent = np.flatnonzero((h.due > h.as_of - 10) & (h.due <= h.as_of))
    cohort = Cohort(recent, h.as_of - 9, h.as_of)
    result = forecast(h, model, {"actual": ACTUAL}, cohort, Options(horizon=90, draws=4))
    made = len(recorded_contacts(h, recent).day)
    expected = sum(result["results"]["actual"]["actions"].values())
    assert expected > 2 * made + 0.3 * len(recent), (expected, made)


def test_the_fixed_calendar_routine_is_recovered():
    """A history that always reminded on days 10, 24 and 38: drawn schedules are exactly that
    calendar, with a fee where one was agreed and a notice last."""
    h = generate("fixed-calendar", 20_000, 2).history
    routine = from_history(h)
    chosen = np.flatnonzero(~h.disputed)[:500]
    schedule = routine.draw(
        routine.month_index(h.due[chosen]),
        stratum_of(h.b2c[chosen], h.fee_agreed[chosen], h.disputed[chosen]),
        np.full(len(chosen), -20),
        180,
        np.random.default_rng(0),
    )
    assert len(schedule.day) == 3 * len(chosen)
    for day, channel, notice in ((10, "letter", False), (24, "sms", False), (38, "letter", True)):
        on = schedule.day == day
        assert on.sum() == len(chosen)
        assert np.all(schedule.channel[on] == CHANNELS.index(channel))
        assert np.all(schedule.notice[on] == notice)
    first = schedule.day == 10
    # a fee where one was agreed (the kinds borrow a little from other strata: ≥ 99 %)
    agreed = h.fee_agreed[chosen][schedule.invoice[first]]
    assert np.mean(schedule.fee[first] == agreed) >= 0.99
    disputed = np.flatnonzero(h.disputed)[:50]
    none = routine.draw(
        routine.month_index(h.due[disputed]),
        stratum_of(h.b2c[disputed], h.fee_agreed[disputed], h.disputed[disputed]),
        np.full(len(disputed), -20),
        180,
        np.random.default_rng(0),
    )
    # the routine never contacts a disputed invoice; the estimate borrows one invoice's worth
    # from the other strata, so at most one of these 50 draws a schedule
    assert len(np.unique(none.invoice)) <= 1
