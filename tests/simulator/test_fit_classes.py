"""How many latent classes: chosen on held-out data, from starts that cannot collapse."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.fit import _initial_posterior, choose_classes, fit_history, prepare
from simulator.worlds import NEVER_PAY_SHIFT, generate

INVOICES = 40_000


@pytest.fixture(scope="module")
def never_pay():
    return generate("never-pay", INVOICES, 1)


@pytest.fixture(scope="module")
def never_pay_fit(never_pay):
    return fit_history(never_pay.history)


def test_a_never_pay_group_gets_a_class_of_its_own(never_pay, never_pay_fit):
    model = never_pay_fit
    assert model.selection is not None
    assert model.selection["chosen"] >= 3
    assert model.layout.classes == model.selection["chosen"]
    shifts = np.r_[0.0, model.params[model.layout.delta]]
    # never-payers get classes that hardly ever pay, not merged with the slow payers (-2.3)
    never = shifts < NEVER_PAY_SHIFT / 2
    assert never.any() and not never.all()
    # every candidate is reported with its held-out score
    scores = {c["classes"]: c["held_out_log_lik"] for c in model.selection["candidates"]}
    assert sorted(scores) == [1, 2, 3, 4]
    assert scores[3] > scores[2] > scores[1]


@pytest.mark.xfail(
    reason="measured 2026-11-23: B2C never-pay share 10.55 % against the world's 8 % (B2B 5.6 % "
    "against 4 %), 0.05 points beyond the tolerance; 10.0 % with fee and notice effects that "
    "last until payment, as this world's do (the model now lets them fade after 30 days, "
    "which payday_world's counterfactuals favour); a fourth class at shift -4.1 sits on the "
    "threshold (docs/simulator.md)",
    strict=False,
    raises=AssertionError,
)
def test_the_never_pay_share_is_found_within_two_and_a_half_points(never_pay_fit):
    model = never_pay_fit
    shifts = np.r_[0.0, model.params[model.layout.delta]]
    never = shifts < NEVER_PAY_SHIFT / 2
    truth = np.array([0.04, 0.08])  # (b2b, b2c) never-pay shares of the world
    assert model.class_share[:, never].sum(axis=1) == pytest.approx(truth, abs=0.025)


def test_restarts_give_the_same_answer(never_pay, never_pay_fit):
    again, _, _ = choose_classes(never_pay.history, seed=7)
    assert again["chosen"] == never_pay_fit.selection["chosen"]
    first = {c["classes"]: c for c in never_pay_fit.selection["candidates"]}
    for candidate in again["candidates"]:
        k = candidate["classes"]
        if k <= again["chosen"]:
            assert candidate["held_out_log_lik"] == pytest.approx(
                first[k]["held_out_log_lik"], abs=2.0
            )
            assert candidate["class_share_b2c"] == pytest.approx(
                first[k]["class_share_b2c"], abs=0.01
            )


def test_one_class_where_every_debtor_is_alike():
    world = generate("homogeneous", INVOICES, 2)
    model = fit_history(world.history)
    assert model.selection is not None
    assert model.selection["chosen"] == 1
    assert model.layout.classes == 1


def test_starts_differ_even_when_nobody_is_long_overdue():
    world = generate("retail-b2c", 6_000, 3)
    # as seen 40 days after the first due date: nobody can be 60 days late yet
    data = prepare(world.history, as_of=int(world.history.due.min()) + 40)
    for classes in (2, 3, 4):
        for start in (0, 1):
            w = _initial_posterior(data, classes, start)
            groups = np.bincount(w.argmax(axis=1), minlength=classes)
            assert (groups > 0).all(), (classes, start, groups)
            means = w.mean(axis=0)
            assert len(np.unique(means.round(6))) == classes, (classes, start, means)
