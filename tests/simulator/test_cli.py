"""`kravlab sim` end to end on a small world: generate, fit, forecast (JSON and plot), backtest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

POLICY = {
    "name": "Two reminders",
    "steps": [
        {"day": 10, "action": "reminder", "channel": "letter", "fee": 6000},
        {"day": 24, "action": "reminder", "channel": "sms"},
    ],
    "escalate_after_days": 60,
}


def sim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", "sim", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("world")
    result = sim(
        "generate",
        "--world",
        "wholesale-b2b",
        "--invoices",
        "20000",
        "--seed",
        "4",
        "--out",
        str(folder),
    )
    assert result.returncode == 0, result.stderr
    return folder


def test_generate_writes_the_history_and_its_truth(history):
    assert {p.name for p in history.iterdir()} == {
        "invoices.csv",
        "payments.csv",
        "actions.csv",
        "truth.json",
    }
    truth = json.loads((history / "truth.json").read_text())
    assert truth["world"] == "wholesale-b2b" and truth["parameters"]["collection_notice"] == 0.5
    assert (history / "invoices.csv").read_text().count("\n") == 20_001


def test_fit_prints_estimates_and_their_sources(history):
    result = sim("fit", str(history), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["invoices"] == 20_000
    sources = {p["name"]: p["source"] for p in report["parameters"]}
    assert sources["baseline[0]"] == "data"
    table = sim("fit", str(history))
    assert table.returncode == 0, table.stderr
    # Bracketed names are printed as they are, not taken for rich's style tags.
    for name in ("beta[b2c]", "bump[letter,0..2]", "class_shift[1]"):
        assert name in sources and name in table.stdout


def test_forecast_json_and_plot(history, tmp_path):
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(POLICY))
    plot = tmp_path / "cash.png"
    result = sim(
        "forecast",
        str(history),
        "--policy",
        f"two={policy}",
        "--policy",
        "actual=actual",
        "--horizon",
        "120",
        "--draws",
        "8",
        "--json",
        "--plot",
        str(plot),
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert list(out["results"]) == ["two", "actual"] and out["horizon_days"] == 120
    assert "180" not in out["results"]["two"]["recovery"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = sim("forecast", str(history), "--policy", f"[bold]two={policy}", "--draws", "4")
    assert table.returncode == 0 and "recovered by day 30" in table.stdout
    assert "[bold]two" in table.stdout and "fee income (SEK)" in table.stdout
    cheap = json.loads(
        sim(
            "forecast",
            str(history),
            "--policy",
            f"two={policy}",
            "--draws",
            "2",
            "--json",
            "--cost",
            "letter=0",
            "--cost",
            "sms=0",
        ).stdout
    )
    assert cheap["results"]["two"]["channel_cost"] == 0
    assert out["results"]["two"]["channel_cost"] > 0
    bad = sim("forecast", str(history), "--policy", f"two={policy}", "--cost", "pigeon=5")
    assert bad.returncode == 2 and "--cost takes CHANNEL=MINOR_UNITS" in bad.stderr


def test_backtest_json(history):
    result = sim("backtest", str(history), "--split", "2024-11-01", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["split"] == "2024-11-01" and report["points"][0][0] == -30
    assert 0 <= report["coverage"] <= 1 and report["mae_pp"] < 5


def test_bad_inputs_fail_with_exact_messages(history, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"name": "x", "steps": [{"day": 5, "action": "reminder", "channel": "fax"}]})
    )
    result = sim("forecast", str(history), "--policy", f"bad={bad}")
    assert (
        result.returncode == 2
        and "steps[0].channel: must be one of email, sms, letter, phone" in result.stderr
    )
    result = sim("forecast", str(history), "--policy", "no-equals-sign")
    assert result.returncode == 2 and "NAME=FILE" in result.stderr
    broken = tmp_path / "history"
    broken.mkdir()
    (broken / "invoices.csv").write_text(
        "invoice_id,debtor_id,debtor_type,issue_date,due_date,amount,currency\n"
        "A,C,b2b,2025-01-01,2024-12-01,10,SEK\n"
    )
    (broken / "payments.csv").write_text("invoice_id,paid_date,amount\nB,2025-01-05,10\n")
    result = sim("fit", str(broken))
    assert result.returncode == 2
    assert "invoices.csv:2 column due_date: due_date is before issue_date" in result.stderr
    assert "payments.csv:2 column invoice_id: unknown invoice 'B'" in result.stderr
