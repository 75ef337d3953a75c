"""Backtests (formats §4): fit on what was known at a split date, predict what came after.

The model sees invoices issued before the split with payments and contacts up to it (open
invoices censored there), and so does the estimate of the client's own contact routine
(`simulator.logging_policy`). The test cohort is the invoices due in a window from the
split that were observed through the whole horizon, so every day of the curve is judged on
the same invoices and both curves are monotone. The prediction replays the cohort under
the estimated routine by g-computation, exactly as a forecast of `actual` would.

Beside the model stand two naive forecasts a finance team would make without it: the
training period's own cash-in curve, and the curve of the last three months before the
split (both amount-weighted life tables, so open invoices count while they were open).
A model that does not beat them is reported as such.

With several split dates (rolling origin) the report holds one block per split and their
mean; the errors by horizon across the splits also calibrate forecast intervals
(`calibration`), and the coverage they would have had is measured leaving each split out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from simulator.exposure import Contacts
from simulator.fit import Fit, fit_history, recorded_contacts, static_codes
from simulator.forecast import _group, draw_classes
from simulator.history import NOT_SETTLED, History, day_date
from simulator.logging_policy import from_history
from simulator.model import FIRST_DAY
from simulator.replay import Rows, first_day, run, run_observed

FROM_DAY = -30
# The test cohort: invoices due in this many days from the split (and observed through the
# horizon); rolling splits step back by the same amount, so test cohorts do not overlap.
WINDOW_DAYS = 61
# A split needs at least this many test invoices: on fewer, both curves are noise.
MIN_INVOICES = 200
# The recent-curve baseline: invoice-days at risk in this many days before the split.
RECENT_DAYS = 91
Z90 = 1.6448536269514722  # two-sided 90 % normal quantile
# Horizon bands the calibration pools errors over (lower bounds, days after due).
CALIBRATION_BANDS = (FROM_DAY, 0, 15, 45, 90, 135)
# Backtests that calibrate a forecast look this far (a longer one needs a longer history);
# later days reuse the largest error measured.
CALIBRATION_HORIZON = 90

Fitter = Callable[[History, int, np.ndarray], Fit]


def _default_fitter(history: History, as_of: int, invoices: np.ndarray) -> Fit:
    """The same fit a forecast makes (classes chosen on held-out data), at the split."""
    return fit_history(history, as_of=as_of, invoices=invoices)


def default_splits(history: History, horizon: int, count: int) -> list[int]:
    """`count` split days stepping back by WINDOW_DAYS from the last that leaves a full window
    of test invoices observed through the horizon; oldest first."""
    last = int(history.as_of) - horizon - WINDOW_DAYS + 1
    return sorted(last - WINDOW_DAYS * j for j in range(count))


def split_days(history: History, latest: int | None, count: int | None, horizon: int) -> list[int]:
    """The CLI's split dates: `count` (default 1 with a given latest split, else 4) stepping
    back by WINDOW_DAYS from `latest` (default the latest a full window allows)."""
    if latest is None:
        return default_splits(history, horizon, count or 4)
    return sorted(latest - WINDOW_DAYS * j for j in range(count or 1))


def summary_lines(report: dict[str, Any]) -> list[str]:
    """What the CLI prints under the table: baselines, skill, the splits' mean, warnings."""
    lines = [
        "naive forecasts on the same invoices: "
        + ", ".join(f"{n} {b['mae_pp']:.2f} pp" for n, b in report["baselines"].items())
        + f"; the model's skill {report['skill']:+.0%}"
    ]
    if len(report["splits"]) > 1:
        mean = report["mean"]
        lines.append(
            f"over {len(report['splits'])} splits: mean error {mean['mae_pp']:.2f} pp "
            f"(naive: "
            + ", ".join(f"{n} {b['mae_pp']:.2f}" for n, b in mean["baselines"].items())
            + f"), coverage {mean['coverage']:.0%}, skill {mean['skill']:+.0%}"
        )
        cal = report["calibration"]
        if cal["coverage_leave_one_split_out"] is not None:
            lines.append(
                "intervals widened by the splits' model-form error would have covered "
                f"{cal['coverage_leave_one_split_out']:.0%} (each split left out of its own "
                "calibration)"
            )
    lines += [f"warning: {w}" for w in report["warnings"]]
    return lines


def cohort_after(history: History, split: int, horizon: int, window: int | None) -> np.ndarray:
    """Invoices due from the split (within `window` days, or any later) observed through the
    horizon: the same invoices for every day of the comparison."""
    chosen = (history.due >= split) & (history.due.astype(np.int64) + horizon <= history.as_of)
    if window is not None:
        chosen &= history.due < split + window
    return np.flatnonzero(chosen)


def backtest(
    history: History,
    split: int,
    horizon: int = 180,
    draws: int = 32,
    seed: int = 0,
    window: int | None = None,
    fitter: Fitter | None = None,
) -> tuple[dict[str, Any], Fit]:
    """One split: the block of formats §4 and the model fitted at the split."""
    train = np.flatnonzero(history.issue < split)
    test = cohort_after(history, split, horizon, window)
    if len(train) == 0 or len(test) == 0:
        raise ValueError(
            f"the split {day_date(split)} leaves no invoices to learn from or none due after it "
            f"and observed for {horizon} days"
        )
    model = (fitter or _default_fitter)(history, split - 1, train)
    routine = from_history(history, as_of=split - 1)
    params = model.draws(max(draws, 2), seed)
    class_draws = draw_classes(model, len(params), seed) if model.layout.classes > 1 else None
    rows = _group(history, model, test, routine, class_draws, seed, amount_sq=True)
    paths = run(params, model.layout, rows, horizon)
    amounts = history.amount[test].astype(np.float64)
    total = amounts.sum()
    share = paths.settled_amount / total  # draws × days
    assert paths.outcome_var is not None
    outcome_sd = np.sqrt(paths.outcome_var) / total
    parameter_sd = share.std(axis=0)
    due = history.due[test].astype(np.int64)
    settled_rel = np.where(
        history.settled[test] == NOT_SETTLED, NOT_SETTLED, history.settled[test] - due
    )
    days = np.arange(FROM_DAY, horizon + 1)
    columns = days - FIRST_DAY
    order = np.argsort(settled_rel)
    paid_by = np.cumsum(amounts[order])
    actual = np.r_[0.0, paid_by][np.searchsorted(settled_rel[order], days, side="right")] / total
    predicted = share[0, columns]
    sd = np.sqrt(parameter_sd[columns] ** 2 + outcome_sd[columns] ** 2)
    low, high = predicted - Z90 * sd, predicted + Z90 * sd
    points = [
        [int(d), float(p), float(a), float(lo), float(hi)]
        for d, p, a, lo, hi in zip(days, predicted, actual, low, high, strict=True)
    ]
    errors = np.abs(predicted - actual) * 100
    baselines = {
        name: {"mae_pp": float(np.abs(curve[columns] - actual).mean() * 100)}
        for name, curve in naive_curves(history, split, horizon).items()
    }
    best = min(b["mae_pp"] for b in baselines.values())
    mae = float(errors.mean())
    block: dict[str, Any] = {
        "split": day_date(split).isoformat(),
        "as_of": day_date(history.as_of).isoformat(),
        "train": {"invoices": len(train)},
        "test": {
            "invoices": len(test),
            "due_from": day_date(int(due.min())).isoformat(),
            "due_to": day_date(int(due.max())).isoformat(),
            "observed_through": horizon,
        },
        "points": points,
        "mae_pp": mae,
        "max_abs_pp": float(errors.max()),
        "coverage": float(np.mean((low <= actual) & (actual <= high))),
        "baselines": baselines,
        "skill": float(1.0 - mae / best) if best > 0 else 0.0,
        "sd_pp": {
            "parameters": (parameter_sd[columns] * 100).tolist(),
            "outcome": (outcome_sd[columns] * 100).tolist(),
        },
        "observed_minus_expected": observed_minus_expected(history, model, test),
        "warnings": [],
    }
    if mae >= best:
        name = min(baselines, key=lambda b: baselines[b]["mae_pp"])
        block["warnings"].append(
            f"split {block['split']}: the model (mean error {mae:.2f} pp) does not beat the "
            f"naive {name} ({best:.2f} pp)"
        )
    return block, model


def naive_curves(history: History, split: int, horizon: int) -> dict[str, np.ndarray]:
    """Settled share by day (FIRST_DAY .. horizon) as a finance team would read it off the
    history at the split: for each day d, the amount-weighted share settled by d among the
    invoices observed through d before the split (`training_curve`), and among those that
    reached day d in the last RECENT_DAYS before it (`recent_curve`).

    A life table would be smoother but is biased here: early days' risk sets hold only
    invoices with long terms, whose hazard then stands for everyone's.
    """
    idx = np.flatnonzero(history.issue < split)
    due = history.due[idx].astype(np.int64)
    amount = history.amount[idx].astype(np.float64)
    settled = history.settled[idx].astype(np.int64)
    paid = (history.settled[idx] != NOT_SETTLED) & (settled < split)
    settled_rel = np.where(paid, settled - due, np.iinfo(np.int64).max // 4)
    days = np.arange(FIRST_DAY, horizon + 1)
    # reached[i] = the last day invoice i was observed through before the split
    reached = split - 1 - due
    curves = {}
    for name, earliest in (("training_curve", None), ("recent_curve", RECENT_DAYS)):
        share = np.full(len(days), np.nan)
        for j, d in enumerate(days.tolist()):
            seen = reached >= d
            if earliest is not None:
                seen &= reached < d + earliest
            total = amount[seen].sum()
            if total > 0:
                share[j] = amount[seen & (settled_rel <= d)].sum() / total
        curves[name] = share
    # days the recent window never reached borrow the training period's share
    curves["recent_curve"] = np.where(
        np.isnan(curves["recent_curve"]), curves["training_curve"], curves["recent_curve"]
    )
    return {
        name: np.maximum.accumulate(np.nan_to_num(curve, nan=0.0)) for name, curve in curves.items()
    }


def observed_minus_expected(history: History, model: Fit, test: np.ndarray) -> dict[str, float]:
    """A diagnostic, not a forecast: per segment, the amount settled by the horizon minus the
    model's hazards summed over the days each invoice was actually at risk with the contacts
    it actually got (the compensator), in points of the segment's amount.

    Near zero where the model fits; it says *where* a misfit sits (B2B or B2C, small or
    large invoices) but it is not an outcome forecast: it conditions on the realised days at
    risk, so it cannot be compared with the baselines or used for `actual`.
    """
    due = history.due[test].astype(np.int64)
    observed_to = (history.as_of - due).astype(np.int64)
    settled_rel = np.where(
        history.settled[test] == NOT_SETTLED, NOT_SETTLED, history.settled[test] - due
    )
    paid = settled_rel <= observed_to
    weights = model.weights_without_own(history.debtor[test], test)
    amount = history.amount[test].astype(np.float64)
    rows = Rows(
        static_codes(history)[test],
        first_day(history.issue[test], history.due[test]),
        weights * amount[:, None],
        weights,
        recorded_contacts(history, test),
    )
    horizon = int(observed_to.min())
    last = np.where(paid, settled_rel, observed_to)
    median = float(np.median(amount))
    segments = {
        "b2b": ~history.b2c[test],
        "b2c": history.b2c[test],
        "below_median_amount": amount < median,
        "above_median_amount": amount >= median,
    }
    out: dict[str, float] = {}
    for name, mask in segments.items():
        if not mask.any():
            continue
        chosen = np.flatnonzero(mask)
        position = np.full(len(test), -1)
        position[chosen] = np.arange(len(chosen))
        c = rows.contacts
        keep = position[c.invoice] >= 0
        sub = Rows(
            rows.static[chosen],
            rows.start[chosen],
            rows.amount[chosen],
            rows.count[chosen],
            Contacts(
                position[c.invoice[keep]], c.day[keep], c.channel[keep], c.notice[keep], c.fee[keep]
            ),
        )
        paths = run_observed(
            model.params[None], model.layout, sub, horizon, last[chosen], ~paid[chosen]
        )
        expected = paths.settled_amount[0, -1]
        observed = amount[chosen][settled_rel[chosen] <= horizon].sum()
        out[name] = float((observed - expected) / amount[chosen].sum() * 100)
    return out


def rolling(
    history: History,
    splits: list[int],
    horizon: int = 180,
    draws: int = 32,
    seed: int = 0,
    fitter: Fitter | None = None,
) -> dict[str, Any]:
    """Backtests at several split dates: the latest block's fields at the top (formats §4),
    every block under `splits`, their mean under `mean`, and the interval calibration."""
    blocks = []
    skipped = []
    for split in sorted(splits):
        window = WINDOW_DAYS if len(splits) > 1 else None
        try:
            block, _ = backtest(history, split, horizon, draws, seed, window, fitter)
        except ValueError as exc:
            skipped.append(str(exc))
            continue
        if block["test"]["invoices"] < MIN_INVOICES and len(splits) > 1:
            skipped.append(
                f"split {block['split']}: only {block['test']['invoices']} test invoices"
            )
            continue
        blocks.append(block)
    if not blocks:
        raise ValueError("no split leaves enough test invoices: " + "; ".join(skipped))
    names = list(blocks[0]["baselines"])
    baseline_mae = {n: float(np.mean([b["baselines"][n]["mae_pp"] for b in blocks])) for n in names}
    mean: dict[str, Any] = {
        "mae_pp": float(np.mean([b["mae_pp"] for b in blocks])),
        "max_abs_pp": float(np.max([b["max_abs_pp"] for b in blocks])),
        "coverage": float(np.mean([b["coverage"] for b in blocks])),
        "baselines": {n: {"mae_pp": v} for n, v in baseline_mae.items()},
    }
    best = min(baseline_mae.values())
    mean["skill"] = float(1.0 - mean["mae_pp"] / best) if best > 0 else 0.0
    warnings = [w for b in blocks for w in b["warnings"]]
    if mean["mae_pp"] >= best and len(blocks) > 1:
        warnings.append(
            f"over {len(blocks)} splits the model (mean error {mean['mae_pp']:.2f} pp) does not "
            f"beat the best naive forecast ({best:.2f} pp)"
        )
    report = {k: v for k, v in blocks[-1].items() if k != "warnings"}
    report.update(
        {
            "splits": [{k: v for k, v in b.items() if k != "warnings"} for b in blocks],
            "mean": mean,
            "calibration": calibration(blocks),
            "warnings": warnings + skipped,
        }
    )
    return report


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """What a saved model keeps of a `rolling` report (formats §5 `backtest`): per split its
    date, test cohort, errors, coverage, the naive baselines and skill; their mean; the
    interval calibration (so a forecast from the stored model can be calibrated without
    backtesting again); and the warnings. The curves (`points`) are left out."""
    blocks = report.get("splits") or [report]
    horizon = int(blocks[-1]["test"]["observed_through"])
    return {
        "horizon": horizon,
        "as_of": blocks[-1]["as_of"],
        "splits": [
            {
                "split": b["split"],
                "train_invoices": int(b["train"]["invoices"]),
                "test": dict(b["test"]),
                "mae_pp": float(b["mae_pp"]),
                "max_abs_pp": float(b["max_abs_pp"]),
                "coverage": float(b["coverage"]),
                "skill": float(b["skill"]),
                "baselines": {n: float(v["mae_pp"]) for n, v in b["baselines"].items()},
            }
            for b in blocks
        ],
        "mean": report.get("mean"),
        "calibration": report.get("calibration"),
        "warnings": list(report.get("warnings", [])),
    }


def calibration(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """Model-form error by horizon band, from the splits' errors beyond what parameters and
    chance explain; and the coverage 90 % intervals widened by it would have had, each split
    judged by a calibration made without it.

    The forecast adds `excess_sd_pp` of the band in quadrature to its parameter spread.
    """
    bands = list(CALIBRATION_BANDS)

    def band_of(day: int) -> int:
        return int(np.searchsorted(bands, day, side="right") - 1)

    def excess(chosen: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        squared = np.zeros(len(bands))
        explained = np.zeros(len(bands))
        count = np.zeros(len(bands))
        for b in chosen:
            for (d, p, a, _, _), sp, so in zip(
                b["points"], b["sd_pp"]["parameters"], b["sd_pp"]["outcome"], strict=True
            ):
                k = band_of(d)
                squared[k] += ((p - a) * 100) ** 2
                explained[k] += sp**2 + so**2
                count[k] += 1
        return np.sqrt(np.maximum(squared - explained, 0.0) / np.maximum(count, 1)), count

    overall, points = excess(blocks)
    covered = total = 0
    if len(blocks) > 1:
        for i, b in enumerate(blocks):
            extra, _ = excess(blocks[:i] + blocks[i + 1 :])
            for (d, p, a, _, _), sp, so in zip(
                b["points"], b["sd_pp"]["parameters"], b["sd_pp"]["outcome"], strict=True
            ):
                sd = np.sqrt(sp**2 + so**2 + extra[band_of(d)] ** 2) / 100
                covered += abs(p - a) <= Z90 * sd
                total += 1
    return {
        "bands": [
            {"from_day": lo, "excess_sd_pp": float(v), "points": int(n)}
            for lo, v, n in zip(bands, overall, points, strict=True)
        ],
        "coverage_leave_one_split_out": float(covered / total) if total else None,
        "splits": len(blocks),
    }
