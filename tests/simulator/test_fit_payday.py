"""The fit on the product owner's reference world (../shared/worlds/payday_world.py), made
from debtor mechanics rather than from our model: used as it is, never tuned to."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
from pathlib import Path

import numpy as np
import pytest

from simulator.fit import fit_history
from simulator.history import load_history

PAYDAY = Path(__file__).resolve().parents[3] / "shared" / "worlds" / "payday_world.py"


@pytest.fixture(scope="module")
def payday(tmp_path_factory):
    if not PAYDAY.exists():
        pytest.skip("../shared/worlds/payday_world.py is not beside the repository")
    spec = importlib.util.spec_from_file_location("payday_world", PAYDAY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["payday_world"] = module
    spec.loader.exec_module(module)
    out = tmp_path_factory.mktemp("payday")
    with contextlib.redirect_stdout(io.StringIO()):
        module.write(str(out), 20_000, 11, 1)
    return load_history(out / "history")


def test_classes_on_a_world_not_made_by_our_model(payday):
    model = fit_history(payday)
    selection = model.selection
    assert selection is not None and len(selection["candidates"]) == 4
    # debtors differ (attention, buffers, payment runs, insolvency): one class does not do
    assert selection["chosen"] >= 2
    scores = {c["classes"]: c["held_out_log_lik"] for c in selection["candidates"]}
    assert scores[selection["chosen"]] > scores[1]
    # the insolvent (a few per cent of debtors) end up in a class that hardly ever pays
    shifts = np.r_[0.0, model.params[model.layout.delta]]
    assert shifts.min() < -3.0
    assert model.convergence["em_converged"] and model.convergence["optimiser_success"]
