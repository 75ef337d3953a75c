"""Fitted synthetic worlds, shared by the simulator tests (fitting is the slow part)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from simulator.fit import Fit, fit, prepare
from simulator.forecast import Options, default_cohort, forecast
from simulator.worlds import World, generate
from tests.simulator.scenarios import BASELINE, CHANGES

INVOICES = 200_000
DAYS = (30, 60, 90)


@dataclass
class Fitted:
    world: World
    fit: Fit
    forecast: dict[str, Any]
    truth: dict[str, dict[int, float]]


_cache: dict[tuple[str, int], Fitted] = {}


def fitted(name: str, seed: int) -> Fitted:
    key = (name, seed)
    if key not in _cache:
        world = generate(name, INVOICES, seed)
        model = fit(prepare(world.history))
        cohort = default_cohort(world.history)
        candidates = {"baseline": BASELINE, **CHANGES}
        result = forecast(world.history, model, candidates, cohort, Options(draws=64, seed=seed))
        truth = {}
        for label, policies in candidates.items():
            outcome = world.true_outcome(policies[0], cohort.invoices)
            truth[label] = {
                d: float(outcome["settled_share"][np.searchsorted(outcome["days"], d)])
                for d in DAYS
            }
        _cache[key] = Fitted(world, model, result, truth)
    return _cache[key]


@pytest.fixture(scope="session")
def retail() -> Fitted:
    return fitted("retail-b2c", 1)
