"""The product owner's payday world (../shared/worlds): a history built from debtor mechanics,
not from kravlab's model. Used as it is; the figures it must reach are in issue 9."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from simulator.backtest import default_splits, rolling
from simulator.fit import fit_history, recorded_contacts
from simulator.forecast import ACTUAL, Cohort, Options, default_cohort, forecast
from simulator.history import NOT_SETTLED, load_history
from simulator.policy import parse_policies

WORLDS = Path(__file__).parents[2] / ".." / "shared" / "worlds"
pytestmark = pytest.mark.skipif(not (WORLDS / "payday_world.py").exists(), reason="no ../shared")

INVOICES = 30_000
DAYS = (30, 60, 90)


@pytest.fixture(scope="module")
def payday(tmp_path_factory) -> dict[str, Any]:
    """The world written once (small: 30 000 invoices, 2 repetitions of the truth), fitted
    as a user would, and every candidate forecast on the default cohort."""
    spec = importlib.util.spec_from_file_location("payday_world", WORLDS / "payday_world.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while defined
    spec.loader.exec_module(module)
    out = tmp_path_factory.mktemp("payday")
    module.write(str(out), INVOICES, 11, 2)
    history = load_history(out / "history")
    truth = json.loads((out / "truth.json").read_text())
    candidates: dict[str, Any] = {"actual": ACTUAL}
    for name in truth["candidates"]:
        candidates[name] = parse_policies(
            json.loads((out / "policies" / f"{name}.json").read_text())
        )
    model = fit_history(history)
    cohort = default_cohort(history)
    result = forecast(history, model, candidates, cohort, Options(horizon=90, draws=16))
    per_invoice = np.load(out / "truth_invoices.npz")
    world_index = np.array([int(i[1:]) for i in history.invoice_id[cohort.invoices]])
    amount = per_invoice["amount"][world_index].astype(np.float64)
    horizons = list(per_invoice["horizons"])
    true = {
        name: {
            d: float(per_invoice[name][horizons.index(d)][world_index] @ amount / amount.sum())
            for d in DAYS
        }
        for name in truth["candidates"]
    }
    return {
        "history": history,
        "model": model,
        "cohort": cohort,
        "result": result,
        "truth": truth,
        "true": true,
        "candidates": candidates,
    }


def test_actual_and_every_policy_agree_before_the_first_contact(payday):
    steps = [
        s.day for c in payday["candidates"].values() if c != ACTUAL for p in c for s in p.steps
    ]
    first = min(*steps, int(recorded_contacts(payday["history"]).day.min()))
    assert first == -3  # pre_due_email's step: the days before it are compared
    curves = {name: r["cash_curve"] for name, r in payday["result"]["results"].items()}
    for name, curve in curves.items():
        for row, actual in zip(curve, curves["actual"], strict=True):
            if row[0] < first:
                # the same value up to the order of floating-point sums; the interval's
                # spread of the routine is measured on a subsample of its rows (cost)
                assert row[1] == pytest.approx(actual[1], rel=1e-9, abs=1e-12), (name, row[0])
                assert row[2:] == pytest.approx(actual[2:], rel=0.02), (name, row[0])


def test_every_out_of_support_candidate_is_warned_by_name(payday):
    warnings = payday["result"]["warnings"]
    for name in payday["truth"]["out_of_support"]:
        assert any(w.startswith(f"{name}:") or f", {name}" in w for w in warnings), name


def test_policies_that_stop_contacting_where_the_history_went_on_are_warned(payday):
    # the history contacted every invoice still unpaid two weeks after due: "nothing" is
    # forecast from an assumption (5 pp too high at 90 days on the 100 000-invoice world)
    stops = [
        w.split(":")[0]
        for w in payday["result"]["warnings"]
        if "how invoices pay without further contacts" in w
    ]
    assert "nothing" in stops and "one_reminder" in stops
    assert "current" not in stops and "actual" not in stops


@pytest.fixture(scope="module")
def backtests(payday) -> dict[str, Any]:
    history = payday["history"]
    return rolling(history, default_splits(history, 90, 2), 90, draws=8)


def test_the_backtest_says_whether_the_model_beats_the_naive_forecasts(backtests):
    report = backtests
    for block in report["splits"]:
        best = min(b["mae_pp"] for b in block["baselines"].values())
        warned = any(w.startswith(f"split {block['split']}:") for w in report["warnings"])
        assert warned == (block["mae_pp"] >= best)
        points = np.array(block["points"])
        assert np.all(np.diff(points[:, 2]) >= 0) and np.all(np.diff(points[:, 1]) >= 0)


@pytest.mark.xfail(
    reason="issue 9 target not reached: on the 100 000-invoice payday world 'nothing' (no "
    "contact at all) is forecast 5.2 pp too high at 90 days and 'letters_late' 1.56 pp at "
    "60 days; every other in-support candidate is within 1.31 pp at 30/60/90 days "
    "(docs/simulator.md, 'Accuracy'; it was up to 4.05 pp before class contact effects)",
    strict=False,
    raises=AssertionError,
)
def test_in_support_candidates_are_within_one_and_a_half_points(payday):
    result, truth, true = payday["result"], payday["truth"], payday["true"]
    for name in truth["candidates"]:
        if name in truth["out_of_support"]:
            continue
        for d in DAYS:
            forecast_value = result["results"][name]["recovery"][str(d)]
            assert abs(forecast_value - true[name][d]) <= 0.015, (name, d, forecast_value)


@pytest.mark.xfail(
    reason="issue 9 target not reached: the in-sample actual replay is -1.10 / -0.62 / -0.26 "
    "pp off the observed curve at 30/60/90 days on the 100 000-invoice payday world (it was "
    "about -3 pp before the amount slope per debtor type; docs/simulator.md)",
    strict=False,
    raises=AssertionError,
)
def test_the_in_sample_actual_replay_reproduces_the_observed_curve(payday):
    history = payday["history"]
    due_to = history.as_of - 90
    idx = np.flatnonzero((history.due <= due_to) & (history.due > due_to - 365))
    cohort = Cohort(idx, due_to - 364, due_to)
    result = forecast(
        history, payday["model"], {"actual": ACTUAL}, cohort, Options(horizon=90, draws=4)
    )
    due = history.due[idx].astype(np.int64)
    settled = np.where(history.settled[idx] == NOT_SETTLED, 10**9, history.settled[idx] - due)
    amount = history.amount[idx].astype(np.float64)
    for d in DAYS:
        observed = amount[settled <= d].sum() / amount.sum()
        assert abs(result["results"]["actual"]["recovery"][str(d)] - observed) <= 0.005, d


@pytest.mark.xfail(
    reason="issue 9 target not reached: the rolling backtests' mean error is 1.30 pp on the "
    "100 000-invoice payday world (4 splits; naive curves 1.60 / 1.42 pp: the model beats "
    "them, skill +0.08, but not the 1.0 pp target; docs/simulator.md)",
    strict=False,
    raises=AssertionError,
)
def test_the_backtests_are_within_one_point_and_beat_the_naive_curves(backtests):
    mean = backtests["mean"]
    assert mean["mae_pp"] <= 1.0, mean
    assert mean["mae_pp"] < min(b["mae_pp"] for b in mean["baselines"].values()), mean
    assert 0.80 <= mean["coverage"] <= 0.97, mean


def test_calibrated_intervals_cover_the_in_support_truth(payday, backtests):
    """Calibrated intervals (the backtests' error, and how far the class selection's
    candidate models disagree about each policy) cover the truth at 30/60/90 days at least
    80 % of the time for the in-support candidates; the parameters alone covered 29 % on
    the 100 000-invoice world (docs/simulator.md)."""
    history, truth, true = payday["history"], payday["truth"], payday["true"]
    result = forecast(
        history,
        payday["model"],
        payday["candidates"],
        payday["cohort"],
        Options(horizon=90, draws=16, calibration=backtests["calibration"]),
    )
    assert result["model_form"]["variants"]
    inside = [
        low <= true[name][d] <= high
        for name in truth["candidates"]
        if name not in truth["out_of_support"]
        for d in DAYS
        for low, high in [result["results"][name]["recovery_interval"][str(d)]]
    ]
    assert np.mean(inside) >= 0.8, (np.mean(inside), len(inside))
