"""Simulator speed: load, fit and forecast at a million invoices; the fit against statsmodels.

    .venv/bin/python bench/simulator.py [--invoices 1000000] [--subset 20000]

1. A `retail-b2c` world of `--invoices` invoices is generated and written as CSV (untimed,
   in a child process so its memory is not counted).
2. Timed in this process: loading the CSVs (beside pandas.read_csv of the same files as a
   baseline); fitting the model with the number of classes chosen on held-out data (what
   `kravlab sim fit` does), and for comparison with 2 classes fixed, with and (the baseline)
   without each class's own contact effects; saving and loading the
   model; a forecast of two policies with 100-draw intervals from the loaded model (three
   runs); `actual` (the history's own routine) beside one policy, three runs each, with
   the routine's estimation timed apart; then the peak resident memory.
3. The same estimator two ways on a `--subset`-invoice history with one class and no
   penalty: ours on aggregated cells, and statsmodels' binomial GLM on the expanded
   invoice-day rows. Prints the largest coefficient difference and the speed ratio.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.fit import aggregate, design, fit, fit_history, m_step, prepare  # noqa: E402
from simulator.forecast import ACTUAL, default_cohort, forecast  # noqa: E402
from simulator.history import load_history  # noqa: E402
from simulator.logging_policy import from_history  # noqa: E402
from simulator.model import N_TIME_CODES, Layout  # noqa: E402
from simulator.policy import parse_policies  # noqa: E402
from simulator.saved_model import load_model, save_model  # noqa: E402
from simulator.worlds import generate, write  # noqa: E402

BASE = {
    "name": "base",
    "steps": [
        {"day": 10, "action": "reminder", "channel": "letter", "fee": 6000},
        {"day": 24, "action": "reminder", "channel": "sms"},
        {
            "day": 38,
            "action": "collection_notice",
            "channel": "letter",
            "fee": 18000,
            "deadline_days": 10,
        },
    ],
    "escalate_after_days": 60,
}
EARLY = {**BASE, "name": "early", "steps": [{**BASE["steps"][0], "day": 5}, *BASE["steps"][1:]]}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(label: str, func, *args, **kwargs):
    """Wall time, and this process's CPU time beside it: on a shared machine the wall time
    grows with the load, the CPU time much less (the load average is printed too)."""
    started, cpu = time.perf_counter(), _cpu()
    value = func(*args, **kwargs)
    elapsed = time.perf_counter() - started
    print(
        f"  {label:<34} {elapsed:8.2f} s   (CPU {_cpu() - cpu:6.2f} s, "
        f"load average {os.getloadavg()[0]:.1f})",
        flush=True,
    )
    return value, elapsed


def pandas_baseline(folder: Path) -> float | None:
    """pandas' C reader on the same three files, dates parsed, nothing checked: the speed
    of a compiled CSV parser, for scale (pandas comes with statsmodels in the dev group)."""
    try:
        import pandas as pd
    except ImportError:
        return None
    dates = {
        "invoices.csv": ["issue_date", "due_date"],
        "payments.csv": ["paid_date"],
        "actions.csv": ["date"],
    }
    started = time.perf_counter()
    for name, columns in dates.items():
        pd.read_csv(folder / name, parse_dates=columns, date_format="%Y-%m-%d")
    elapsed = time.perf_counter() - started
    print(f"  baseline: pandas.read_csv, same files {elapsed:8.2f} s (parse only, no checks)")
    return elapsed


def statsmodels_comparison(invoices: int) -> None:
    import statsmodels.api as sm

    history = generate("retail-b2c", invoices, 11).history
    layout = Layout(1)
    started = time.perf_counter()
    data = prepare(history)
    weights = np.ones((data.invoices, 1))
    klass, cells, n, e = aggregate(data, weights)
    x = design(layout, klass, cells)
    used = np.flatnonzero(np.abs(x).sum(axis=0) > 0)  # columns the subset has data for
    x = x[:, used]
    zero = np.zeros(len(used))
    ours = m_step(x, n, e, np.full(len(used), 0.0), zero, zero)
    ours_seconds = time.perf_counter() - started

    started = time.perf_counter()
    s = data.segments
    cell_of_segment = data.static[s.invoice] * N_TIME_CODES + s.code
    lookup = {c: i for i, c in enumerate(cells)}
    rows = np.array([lookup[c] for c in cell_of_segment])
    expanded_x = np.repeat(x[rows], s.length, axis=0)
    y = np.zeros(len(expanded_x))
    ends = np.cumsum(s.length) - 1
    y[ends[s.event]] = 1.0
    glm = sm.GLM(y, expanded_x, family=sm.families.Binomial()).fit(tol=1e-12)
    theirs_seconds = time.perf_counter() - started
    difference = np.abs(glm.params - ours).max()
    print(f"  invoice-day rows for statsmodels      {len(y):,} (cells for ours: {len(n):,})")
    print(f"  ours (segments → cells → Newton)      {ours_seconds:8.2f} s")
    print(f"  statsmodels GLM on expanded rows      {theirs_seconds:8.2f} s")
    print(f"  largest coefficient difference        {difference:.2e}")
    print(f"  speed ratio (statsmodels / ours)      {theirs_seconds / ours_seconds:8.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=1_000_000)
    parser.add_argument("--subset", type=int, default=20_000)
    parser.add_argument(
        "--no-comparison", action="store_true", help="skip the statsmodels comparison"
    )
    parser.add_argument("--write-to", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_to:  # the child: generate and write, then exit
        write(generate("retail-b2c", args.invoices, 7), args.write_to)
        return
    folder = Path(tempfile.mkdtemp(prefix="kravlab-sim-bench-"))
    print(f"generating {args.invoices:,} invoices into {folder} (untimed) ...", flush=True)
    subprocess.run(
        [sys.executable, __file__, "--invoices", str(args.invoices), "--write-to", str(folder)],
        check=True,
    )
    print("timed:")
    history, load_seconds = timed("load CSV history", load_history, folder)
    pandas_seconds = pandas_baseline(folder)
    if pandas_seconds:
        print(f"    ratio to pandas.read_csv             {load_seconds / pandas_seconds:8.2f}x")
    model, _ = timed("fit, classes chosen on held-out", fit_history, history)
    assert model.selection is not None
    scores = ", ".join(
        f"{c['classes']}: {c['per_test_invoice']:.4f}" for c in model.selection["candidates"]
    )
    print(f"    held-out log-lik per test invoice     {scores}; chosen {model.layout.classes}")
    data = prepare(history)
    timed("fit, 2 classes fixed", lambda: fit(data, 2))
    # the baseline in the same run: classes differing only by their shift (before issue 9's
    # class-specific contact effects)
    timed("  the same, classes only shifted", lambda: fit(data, 2, class_contacts=False))
    path = folder / "model.npz"
    timed("save model", save_model, model, path)
    loaded, _ = timed("load model (same history)", load_model, path, history)
    candidates = {"base": parse_policies(BASE), "early": parse_policies(EARLY)}
    cohort = default_cohort(history)
    for _ in range(3):  # three runs each: the machine is shared, read the median
        timed("forecast 2 policies, 100 draws", forecast, history, loaded, candidates, cohort)
    # `actual` against one policy on the same cohort: the routine's replay (given the
    # estimated routine) should cost no more than a policy's; estimating it is timed apart
    routine, _ = timed("estimate the history's routine", from_history, history)
    for _ in range(3):
        timed(
            "forecast 1 policy, 100 draws",
            forecast,
            history,
            loaded,
            {"base": candidates["base"]},
            cohort,
        )
        timed(
            "forecast actual, 100 draws",
            forecast,
            history,
            loaded,
            {"actual": ACTUAL},
            cohort,
            None,
            routine,
        )
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    print(f"  peak memory (load + fits + forecast)  {peak_gb:8.2f} GB")
    print(f"  EM iterations {model.iterations}, invoices {history.size:,}")
    print(f"  model file {path.stat().st_size / 1e6:.1f} MB")
    if not args.no_comparison:
        print(f"statsmodels comparison on {args.subset:,} invoices, one class, no penalty:")
        statsmodels_comparison(args.subset)


if __name__ == "__main__":
    main()
