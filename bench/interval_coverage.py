"""How often the forecast's 90 % intervals cover the truth, with and without calibration.

    .venv/bin/python bench/interval_coverage.py [--invoices 100000] [--world payday|retail-b2c|wholesale-b2b]

For each world: the model is fitted as `kravlab sim fit` does (classes chosen on held-out
data, the selection's candidate models kept), every candidate policy is forecast at 30, 60
and 90 days three ways: parameters only (the default), with the candidate models' band and
no backtest error, and calibrated (rolling backtests, 4 splits, horizon 90, and the band).
Each interval is scored against the world's truth: the product owner's payday world
(../shared/worlds/payday_world.py, seed 11, its candidates and its truth per invoice) or our
own synthetic worlds (seed 1, the scenarios of tests/simulator/scenarios.py, truth from
`World.true_outcome`). Prints coverage and mean width for the in-support candidates (and
the out-of-support ones on payday), and how often the deltas' intervals cover the true
delta. Accuracy, not speed: the figures go to docs/simulator.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

# The repository first: run as a script, bench/ is on the path and bench/simulator.py would
# shadow the simulator package.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.backtest import default_splits, rolling  # noqa: E402
from simulator.fit import fit_history  # noqa: E402
from simulator.forecast import Options, default_cohort, forecast  # noqa: E402
from simulator.history import History, load_history  # noqa: E402
from simulator.policy import Policy, parse_policies  # noqa: E402

DAYS = (30, 60, 90)
SHARED = Path(__file__).resolve().parents[2] / "shared" / "worlds" / "payday_world.py"
NO_BACKTEST = {"splits": 0, "bands": [{"from_day": -30, "excess_sd_pp": 0.0, "points": 1}]}


def payday(
    invoices: int,
) -> tuple[History, dict[str, list[Policy]], dict[str, dict[int, float]], set[str]]:
    spec = importlib.util.spec_from_file_location("payday_world", SHARED)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    out = Path(tempfile.mkdtemp(prefix="payday-"))
    module.write(str(out), invoices, 11, 4)
    history = load_history(out / "history")
    truth = json.loads((out / "truth.json").read_text())
    candidates = {
        name: parse_policies(json.loads((out / "policies" / f"{name}.json").read_text()))
        for name in ["current", *[n for n in truth["candidates"] if n != "current"]]
    }
    cohort = default_cohort(history)
    per = np.load(out / "truth_invoices.npz")
    index = np.array([int(i[1:]) for i in history.invoice_id[cohort.invoices]])
    amount = per["amount"][index].astype(np.float64)
    horizons = list(per["horizons"])
    true = {
        name: {d: float(per[name][horizons.index(d)][index] @ amount / amount.sum()) for d in DAYS}
        for name in candidates
    }
    return history, candidates, true, set(truth["out_of_support"])


def ours(
    name: str, invoices: int
) -> tuple[History, dict[str, list[Policy]], dict[str, dict[int, float]], set[str]]:
    from simulator.worlds import generate
    from tests.simulator.scenarios import BASELINE, CHANGES

    world = generate(name, invoices, 1)
    candidates = {"baseline": BASELINE, **CHANGES}
    cohort = default_cohort(world.history)
    true = {}
    for label, policies in candidates.items():
        outcome = world.true_outcome(policies[0], cohort.invoices)
        true[label] = {
            d: float(outcome["settled_share"][np.searchsorted(outcome["days"], d)]) for d in DAYS
        }
    return world.history, candidates, true, set()


def score(result: dict[str, Any], true: dict[str, dict[int, float]], outside: set[str]) -> str:
    names = list(true)
    covered: dict[bool, list[bool]] = {True: [], False: []}
    widths, deltas = [], []
    for name in names:
        for d in DAYS:
            low, high = result["results"][name]["recovery_interval"][str(d)]
            covered[name in outside].append(low <= true[name][d] <= high)
            if name not in outside:
                widths.append(high - low)
                if name != names[0]:
                    dlow, dhigh = result["deltas"][name]["recovery_interval"][str(d)]
                    deltas.append(dlow <= true[name][d] - true[names[0]][d] <= dhigh)
    line = (
        f"in support {sum(covered[False])}/{len(covered[False])} "
        f"({np.mean(covered[False]):.0%}), mean width {np.mean(widths) * 100:.2f} pp; "
        f"deltas {sum(deltas)}/{len(deltas)}"
    )
    if covered[True]:
        line += f"; out of support {sum(covered[True])}/{len(covered[True])}"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=None)
    parser.add_argument(
        "--world", action="append", choices=("payday", "retail-b2c", "wholesale-b2b")
    )
    args = parser.parse_args()
    for world in args.world or ["payday", "retail-b2c", "wholesale-b2b"]:
        if world == "payday":
            if not SHARED.exists():
                print("payday: ../shared/worlds is not here; skipped")
                continue
            history, candidates, true, outside = payday(args.invoices or 100_000)
        else:
            history, candidates, true, outside = ours(world, args.invoices or 150_000)
        model = fit_history(history)
        cohort = default_cohort(history)
        calibration = rolling(history, default_splits(history, 90, 4), 90)["calibration"]
        print(
            f"{world}: {history.size:,} invoices, {model.layout.classes} classes, "
            f"candidate models {[v.classes for v in model.variants]}"
        )
        for label, chosen in (
            ("parameters only", None),
            ("with the candidate models' band", NO_BACKTEST),
            ("calibrated (backtests and band)", calibration),
        ):
            result = forecast(
                history, model, candidates, cohort, Options(horizon=90, calibration=chosen)
            )
            print(f"  {label:34s} {score(result, true, outside)}")


if __name__ == "__main__":
    main()
