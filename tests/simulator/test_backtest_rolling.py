"""Rolling-origin backtests: same invoices every day, naive baselines, calibration (issue 9)."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.backtest import default_splits, rolling
from simulator.fit import fit, prepare
from simulator.forecast import Options, default_cohort, forecast
from simulator.worlds import generate
from tests.simulator.scenarios import BASELINE

HORIZON = 90


def _two_classes(history, as_of, invoices):
    """The world's own number of classes: class selection is tested with the fit."""
    return fit(prepare(history, as_of=as_of, invoices=invoices), 2)


@pytest.fixture(scope="module")
def world():
    return generate("retail-b2c", 150_000, 5)


@pytest.fixture(scope="module")
def report(world):
    h = world.history
    return rolling(h, default_splits(h, HORIZON, 3), HORIZON, draws=16, fitter=_two_classes)


def test_every_split_compares_the_same_invoices_on_every_day(world, report):
    h = world.history
    assert len(report["splits"]) == 3
    assert report["points"] == report["splits"][-1]["points"]  # formats §4 at the top
    for block in report["splits"]:
        points = np.array(block["points"])
        assert points[0, 0] == -30 and points[-1, 0] == HORIZON
        assert np.all(np.diff(points[:, 1]) >= 0) and np.all(np.diff(points[:, 2]) >= 0)
        assert np.all(points[:, 3] <= points[:, 1]) and np.all(points[:, 1] <= points[:, 4])
        test = block["test"]
        assert test["observed_through"] == HORIZON and test["invoices"] >= 200
        assert test["due_to"] <= str(np.datetime64(int(h.as_of) - HORIZON, "D"))
        assert block["split"] <= test["due_from"]
    splits = [b["split"] for b in report["splits"]]
    assert splits == sorted(set(splits))


def test_the_model_is_accurate_and_its_intervals_cover(report):
    mean = report["mean"]
    assert mean["mae_pp"] <= 1.0, mean
    assert 0.80 <= mean["coverage"] <= 0.97, mean
    assert set(mean["baselines"]) == {"training_curve", "recent_curve"}


def test_a_model_that_does_not_beat_the_naive_forecasts_is_warned_about(report):
    for block in report["splits"]:
        best = min(b["mae_pp"] for b in block["baselines"].values())
        assert block["skill"] == pytest.approx(1 - block["mae_pp"] / best)
        warned = any(
            w.startswith(f"split {block['split']}:") and "does not beat" in w
            for w in report["warnings"]
        )
        assert warned == (block["mae_pp"] >= best), block["split"]


def test_the_compensator_is_only_a_diagnostic_by_segment(report):
    diagnostic = report["observed_minus_expected"]
    assert set(diagnostic) == {"b2b", "b2c", "below_median_amount", "above_median_amount"}
    assert all(abs(v) < 50 for v in diagnostic.values())


def test_forecast_intervals_calibrated_on_the_backtests(world, report):
    h = world.history
    calibration = report["calibration"]
    assert calibration["splits"] == 3
    assert 0.0 <= calibration["coverage_leave_one_split_out"] <= 1.0
    measured = [b for b in calibration["bands"] if b["points"]]
    assert [b["from_day"] for b in measured] == [-30, 0, 15, 45, 90]
    model = _two_classes(h, h.as_of, None)
    cohort = default_cohort(h)
    plain = forecast(h, model, {"b": BASELINE}, cohort, Options(horizon=HORIZON, draws=16))
    # a band with a large model-form error: the interval must widen by it
    wide = {**calibration, "bands": [{**b, "excess_sd_pp": 2.0} for b in calibration["bands"]]}
    widened = forecast(
        h, model, {"b": BASELINE}, cohort, Options(horizon=HORIZON, draws=16, calibration=wide)
    )
    assert "interval_calibration" not in plain and widened["interval_calibration"] == wide
    for d in ("30", "60", "90"):
        lo, hi = plain["results"]["b"]["recovery_interval"][d]
        wlo, whi = widened["results"]["b"]["recovery_interval"][d]
        assert widened["results"]["b"]["recovery"][d] == plain["results"]["b"]["recovery"][d]
        assert whi - wlo >= 2 * 1.64 * 0.02 and wlo < lo and whi > hi
    assert any("rolling backtests" in w for w in widened["warnings"])
