"""`kravlab sim fit --json --out` and `forecast --model`: the fit report and the saved model
from the command line."""

from __future__ import annotations

import json
import subprocess
import sys

from simulator.saved_model import load_model, save_model

POLICY = {
    "name": "Two reminders",
    "steps": [
        {"day": 10, "action": "reminder", "channel": "letter", "fee": 6000},
        {"day": 24, "action": "reminder", "channel": "sms"},
    ],
}


def sim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", "sim", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_fit_reports_its_class_candidates_and_saves_a_model_forecasts_reuse(tmp_path):
    world = tmp_path / "world"
    made = sim(
        "generate", "--world", "never-pay", "--invoices", "8000", "--seed", "2", "--out", str(world)
    )
    assert made.returncode == 0, made.stderr
    model = tmp_path / "model.npz"
    fitted = sim("fit", str(world), "--json", "--out", str(model))
    assert fitted.returncode == 0, fitted.stderr
    report = json.loads(fitted.stdout)
    selection = report["class_selection"]
    assert [c["classes"] for c in selection["candidates"]] == [1, 2, 3, 4]
    assert all("held_out_log_lik" in c and "standard_error" in c for c in selection["candidates"])
    assert report["classes"] == selection["chosen"] >= 2
    assert report["convergence"]["em_converged"] is True
    assert model.exists()

    table = sim("fit", str(world), "--classes", "2")
    assert table.returncode == 0, table.stderr
    assert "convergence: EM" in table.stdout and "latent classes" not in table.stdout

    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(POLICY))
    reused = sim(
        "forecast", str(world), "--policy", f"two={policy}", "--model", str(model), "--json"
    )
    assert reused.returncode == 0, reused.stderr
    result = json.loads(reused.stdout)
    assert result["cohort"]["currency"] == "SEK" and result["results"]["two"]["recovery"]["90"] > 0

    junk = tmp_path / "junk.npz"
    junk.write_text("no model here")
    refused = sim("forecast", str(world), "--policy", f"two={policy}", "--model", str(junk))
    assert refused.returncode == 2 and "not a saved model" in " ".join(refused.stderr.split())
    # a model file cut short or overwritten still looks like a zip archive at its start
    junk.write_bytes(model.read_bytes()[:200])
    refused = sim("forecast", str(world), "--policy", f"two={policy}", "--model", str(junk))
    assert refused.returncode == 2 and "not a saved model" in " ".join(refused.stderr.split())


def test_fit_can_store_its_backtest_and_forecast_calibrates_from_it(tmp_path):
    world = tmp_path / "world"
    made = sim(
        "generate",
        "--world",
        "retail-b2c",
        "--invoices",
        "8000",
        "--seed",
        "3",
        "--out",
        str(world),
    )
    assert made.returncode == 0, made.stderr
    model = tmp_path / "model.npz"
    fitted = sim("fit", str(world), "--classes", "2", "--backtest", "--json", "--out", str(model))
    assert fitted.returncode == 0, fitted.stderr
    stored = json.loads(fitted.stdout)["backtest"]  # --json stays pure JSON with it
    assert len(stored["splits"]) >= 2 and stored["mean"]["mae_pp"] >= 0
    assert set(stored["splits"][0]["baselines"]) == {"training_curve", "recent_curve"}

    # mark the stored calibration, so reuse is told apart from backtesting again
    marked = load_model(model)
    assert marked.backtest is not None
    for band in marked.backtest["calibration"]["bands"]:
        band["excess_sd_pp"] = 7.25
    save_model(marked, model)

    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(POLICY))
    calibrated = sim(
        "forecast",
        str(world),
        "--policy",
        f"two={policy}",
        "--model",
        str(model),
        "--calibrate",
        "--horizon",
        "90",
        "--draws",
        "8",
        "--json",
    )
    assert calibrated.returncode == 0, calibrated.stderr
    used = json.loads(calibrated.stdout)["interval_calibration"]
    assert used == marked.backtest["calibration"]  # the stored one, not new backtests
    assert (
        used["coverage_leave_one_split_out"]
        == stored["calibration"]["coverage_leave_one_split_out"]
    )
