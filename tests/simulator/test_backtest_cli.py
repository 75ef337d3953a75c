"""`kravlab sim backtest` with rolling splits and `forecast --due-from/--due-to`, end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.backtest import summary_lines
from simulator.worlds import generate, write


def sim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", "sim", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("small")
    write(generate("retail-b2c", 8_000, 7), folder)
    return folder


def test_backtest_with_rolling_splits(history):
    result = sim("backtest", str(history), "--splits", "2", "--horizon", "60", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert len(report["splits"]) == 2 and report["split"] == report["splits"][-1]["split"]
    assert set(report["mean"]) >= {"mae_pp", "coverage", "baselines", "skill"}
    assert report["points"][0][0] == -30 and report["points"][-1][0] == 60
    assert set(report["baselines"]) == {"training_curve", "recent_curve"}
    lines = summary_lines(report)  # what the table view prints under the table
    assert lines[0].startswith("naive forecasts on the same invoices: training_curve")
    assert lines[1].startswith("over 2 splits: mean error")
    assert [line for line in lines if line.startswith("warning:")] == [
        f"warning: {w}" for w in report["warnings"]
    ]


def test_forecast_cohort_by_due_dates(history):
    result = sim(
        "forecast",
        str(history),
        "--policy",
        "a=actual",
        "--due-from",
        "2025-01-01",
        "--due-to",
        "2025-01-31",
        "--horizon",
        "30",
        "--draws",
        "4",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    cohort = json.loads(result.stdout)["cohort"]
    assert cohort["due_from"] == "2025-01-01" and cohort["due_to"] == "2025-01-31"
    assert 0 < cohort["invoices"] < 1_500
