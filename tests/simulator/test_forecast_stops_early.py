"""A policy that stops contacting where the history went on is told that its forecast rests
on an assumption (payday_world: "no contacts at all" came out 5 pp too high at 90 days)."""

from __future__ import annotations

import pytest

from simulator.fit import fit, prepare
from simulator.forecast import Options, warnings
from simulator.policy import parse_policies
from simulator.worlds import generate
from tests.simulator.scenarios import BASELINE, CHANGES

NOTHING = parse_policies({"name": "nothing", "steps": []})


@pytest.fixture(scope="module")
def world():
    return generate("retail-b2c", 12_000, 2)


def test_stopping_earlier_than_the_history_is_warned_by_name(world):
    model = fit(prepare(world.history), classes=1)
    one = "one reminder instead of three"
    found = warnings(
        world.history,
        model,
        {"baseline": BASELINE, one: CHANGES[one], "nothing": NOTHING},
        Options(),
    )
    stops = [w for w in found if "how invoices pay without further contacts" in w]
    assert any(w.startswith(f"{one}: makes no contact after day 10, but 100%") for w in stops)
    assert any(w.startswith("nothing: makes no contact, but") for w in stops)
    assert not any(w.startswith("baseline:") for w in stops)  # the history's own routine
