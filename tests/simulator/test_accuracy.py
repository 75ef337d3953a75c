"""What the simulator must show on synthetic worlds with known truth (issue 3)."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.fit import fit, prepare
from simulator.forecast import Options, default_cohort, forecast
from simulator.policy import parse_policies
from simulator.worlds import generate
from tests.simulator.conftest import DAYS, fitted
from tests.simulator.scenarios import CHANGES

pytestmark = pytest.mark.slow


def test_fit_recovers_the_parameters_the_history_identifies(retail):
    model = retail.fit
    # the world's classes differ only in level: each class's own contact effects are 0
    world = dict(zip(retail.world.layout.names(), retail.world.params, strict=True))
    truth = np.array([world.get(name, 0.0) for name in model.names])
    assert set(world) <= set(model.names)
    z = (model.params - truth) / model.se
    identified = ~model.is_prior()
    # history features stand in for the latent class here (the world's truth has none)
    proxies = np.array(["history_" in n for n in model.names])
    checked = identified & ~proxies
    assert checked.sum() >= 30
    assert np.all(np.abs(z[checked]) < 4), dict(
        zip(np.array(model.names)[checked], z[checked].round(1), strict=True)
    )
    assert np.mean(np.abs(z[checked]) < 2) >= 0.85
    shares = model.class_share[:, 1]
    assert shares == pytest.approx([0.12, 0.22], abs=0.02)  # (B2B, B2C) struggling shares


@pytest.mark.parametrize("world", ["retail-b2c", "wholesale-b2b"])
def test_counterfactuals_are_within_one_point_of_the_truth(world):
    f = fitted(world, 1)
    for label, truth in f.truth.items():
        for d in DAYS:
            forecast_value = f.forecast["results"][label]["recovery"][str(d)]
            assert abs(forecast_value - truth[d]) < 0.01, (
                world,
                label,
                d,
                forecast_value,
                truth[d],
            )
    for label in CHANGES:
        for d in DAYS:
            true_delta = f.truth[label][d] - f.truth["baseline"][d]
            if abs(true_delta) > 0.01:
                assert np.sign(f.forecast["deltas"][label]["recovery"][str(d)]) == np.sign(
                    true_delta
                ), (label, d)


def test_intervals_cover_the_truth_over_seeds():
    covered = total = 0
    for world in ("retail-b2c", "wholesale-b2b"):
        for seed in (1, 2):
            f = fitted(world, seed)
            for label, truth in f.truth.items():
                for d in DAYS:
                    low, high = f.forecast["results"][label]["recovery_interval"][str(d)]
                    covered += low <= truth[d] <= high
                    total += 1
    assert covered / total >= 0.8, covered / total


def test_a_fixed_calendar_history_warns_when_the_day_moves():
    world = generate("fixed-calendar", 50_000, 1)
    model = fit(prepare(world.history))
    same = parse_policies(
        {
            "name": "same",
            "steps": [
                {"day": 10, "action": "reminder", "channel": "letter", "fee": 6000},
                {"day": 24, "action": "reminder", "channel": "sms"},
            ],
        }
    )
    moved = parse_policies(
        {
            "name": "moved",
            "steps": [
                {"day": 5, "action": "reminder", "channel": "letter", "fee": 6000},
                {"day": 24, "action": "reminder", "channel": "sms"},
            ],
        }
    )
    result = forecast(
        world.history,
        model,
        {"same": same, "moved": moved},
        default_cohort(world.history),
        Options(draws=4),
    )
    timing = [w for w in result["warnings"] if "extrapolation" in w]
    assert timing and all(w.startswith("moved:") for w in timing)
    assert "day 5" in timing[0] and "day 10" in timing[0]
    # email never appears in this history: a policy that uses it is told so
    emailing = parse_policies(
        {"name": "email", "steps": [{"day": 10, "action": "reminder", "channel": "email"}]}
    )
    result = forecast(
        world.history, model, {"email": emailing}, default_cohort(world.history), Options(draws=4)
    )
    assert any("channel 'email' never appears" in w for w in result["warnings"])
    sources = {r["name"]: r["source"] for r in model.report()}
    assert sources["bump[email,0..2]"] == "prior" and sources["bump[letter,0..2]"] == "data"


def test_forecast_json_has_the_shape_of_formats_3(retail):
    result = retail.forecast
    assert set(result) == {"as_of", "horizon_days", "cohort", "results", "deltas", "warnings"}
    base = result["results"]["baseline"]
    assert list(base["recovery"]) == ["0", "30", "60", "90", "120", "180"]
    assert base["cash_curve"][0][0] == -30 and base["cash_curve"][-1][0] == 180
    assert all(row[2] <= row[1] <= row[3] for row in base["cash_curve"])
    curve = [row[1] for row in base["cash_curve"]]
    assert curve == sorted(curve)  # cumulative
    assert set(base["actions"]) == {"email", "sms", "letter", "phone"}
    assert base["actions"]["letter"] > 0 and base["actions"]["phone"] == 0
    assert base["fee_income"] > 0 and base["interest_income"] > 0 and base["channel_cost"] > 0
    assert base["escalations"]["count"] > 0 and base["escalations"]["amount"] > 0
    assert set(result["deltas"]) == set(CHANGES)
    assert result["cohort"]["currency"] == "SEK" and result["cohort"]["invoices"] > 100_000


def test_the_actual_replay_reproduces_the_observed_curve(retail):
    """The history's own routine replayed (g-computation, as `actual` is forecast) on a
    year of invoices observed through 90 days, against what was observed on them."""
    from simulator.forecast import ACTUAL, Cohort
    from simulator.history import NOT_SETTLED

    h, model = retail.world.history, retail.fit
    due_to = h.as_of - 90
    idx = np.flatnonzero((h.due <= due_to) & (h.due > due_to - 365))
    cohort = Cohort(idx, due_to - 364, due_to)
    result = forecast(h, model, {"actual": ACTUAL}, cohort, Options(horizon=90, draws=4))
    due = h.due[idx].astype(np.int64)
    settled = np.where(h.settled[idx] == NOT_SETTLED, 10**9, h.settled[idx].astype(np.int64) - due)
    for d in DAYS:
        observed = h.amount[idx][settled <= d].sum() / h.amount[idx].sum()
        predicted = result["results"]["actual"]["recovery"][str(d)]
        assert abs(predicted - observed) < 0.005, (d, predicted, observed)
