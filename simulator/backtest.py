"""Backtests (formats §4): fit on what was known at a split date, predict what came after.

The model sees invoices issued before the split with payments and contacts up to it (open
invoices censored there); the test cohort is the invoices due on or after the split,
replayed with the contacts actually recorded. For every day d the comparison is over the
test invoices observed through d, so a late day is judged on old invoices only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simulator.fit import Fit, fit, prepare, recorded_contacts, static_codes
from simulator.history import NOT_SETTLED, History, day_date
from simulator.replay import Rows, first_day, run_observed

FROM_DAY = -30
# A day is compared only while at least this many test invoices are observed through it:
# on a handful of invoices both curves are noise.
MIN_INVOICES = 200


def backtest(
    history: History,
    split: int,
    horizon: int = 180,
    draws: int = 32,
    classes: int = 2,
    seed: int = 0,
) -> tuple[dict[str, Any], Fit]:
    train = np.flatnonzero(history.issue < split)
    test = np.flatnonzero(history.due >= split)
    if len(train) == 0 or len(test) == 0:
        raise ValueError("the split leaves no invoices to learn from or none to test on")
    model = fit(prepare(history, as_of=split - 1, invoices=train), classes=classes)
    params = model.draws(max(draws, 2), seed)
    weights = model.weights_without_own(history.debtor[test], test)
    rows = Rows(
        static_codes(history)[test],
        first_day(history.issue[test], history.due[test]),
        weights * history.amount[test][:, None],
        weights.copy(),
        recorded_contacts(history, test),
    )
    observed_until = (history.as_of - history.due[test]).astype(np.int64)
    settled_rel = np.where(
        history.settled[test] == NOT_SETTLED,
        NOT_SETTLED,
        history.settled[test].astype(np.int64) - history.due[test],
    )
    paid = settled_rel <= observed_until
    paths = run_observed(
        params,
        model.layout,
        rows,
        horizon,
        np.where(paid, settled_rel, observed_until),
        ~paid,
        observed_until=observed_until,
    )
    assert paths.observed_share is not None
    points = []
    for d in range(FROM_DAY, horizon + 1):
        seen = observed_until >= d
        if seen.sum() < MIN_INVOICES:
            break
        amounts = history.amount[test][seen]
        actual = float(amounts[settled_rel[seen] <= d].sum() / amounts.sum())
        column = int(np.searchsorted(paths.days, d))
        predicted = paths.observed_share[:, column]
        low, high = np.percentile(predicted, [5, 95])
        points.append([d, float(predicted[0]), actual, float(low), float(high)])
    errors = np.array([abs(p[1] - p[2]) for p in points]) * 100
    covered = np.array([p[3] <= p[2] <= p[4] for p in points])
    report = {
        "split": day_date(split).isoformat(),
        "as_of": day_date(history.as_of).isoformat(),
        "train": {"invoices": len(train)},
        "test": {"invoices": len(test)},
        "points": points,
        "mae_pp": float(errors.mean()),
        "max_abs_pp": float(errors.max()),
        "coverage": float(covered.mean()),
    }
    return report, model
