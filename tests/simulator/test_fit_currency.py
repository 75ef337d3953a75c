"""Amounts in any currency: ISO 4217 minor units, amount bins from the history's own amounts,
and a history where everyone pays is not forecast to leave money unpaid."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.fit import fit_history, static_codes
from simulator.forecast import Options, default_cohort, forecast
from simulator.history import NOT_SETTLED, load_history
from simulator.model import AMOUNT_BINS, N_AMOUNT
from simulator.worlds import generate, write
from tests.simulator.scenarios import BASELINE


@pytest.fixture(scope="module")
def world():
    return generate("retail-b2c", 12_000, 5)


@pytest.fixture(scope="module")
def sek_fit(world):
    return fit_history(world.history, classes=2)


@pytest.mark.parametrize("currency", ["USD", "JPY"])
def test_a_history_in_another_currency_loads_fits_and_forecasts_its_own_amounts(
    tmp_path, world, sek_fit, currency
):
    write(world, tmp_path, currency)
    text = (tmp_path / "invoices.csv").read_text().splitlines()[1].split(",")
    if currency == "JPY":
        assert "." not in text[5]  # yen have no minor unit below them
    history = load_history(tmp_path)
    assert history.currency == currency
    assert history.exponent == (0 if currency == "JPY" else 2)
    assert np.array_equal(history.amount, world.history.amount)
    assert np.array_equal(history.pay_amount.sum(), world.history.pay_amount.sum())
    # the amount bins spread over the history's own amounts, whatever the unit
    bins = (static_codes(history) // 2) % N_AMOUNT
    shares = np.bincount(bins, minlength=N_AMOUNT) / history.size
    assert shares == pytest.approx(np.full(AMOUNT_BINS, 1 / AMOUNT_BINS), abs=0.01)
    model = fit_history(history, classes=2)
    assert model.currency == currency
    # the SEK original (as of its own day, a little later than the files' last event)
    assert model.params == pytest.approx(sek_fit.params, abs=1e-3)
    cohort = default_cohort(history)
    result = forecast(history, model, {"baseline": BASELINE}, cohort, Options(draws=8))
    assert result["cohort"]["currency"] == currency
    assert result["cohort"]["amount"] == int(world.history.amount[cohort.invoices].sum())


def test_where_every_invoice_is_paid_the_long_run_recovery_is_complete():
    world = generate("homogeneous", 30_000, 6)
    h = world.history
    late = h.settled.astype(np.int64) - h.due
    paid_within_90 = (h.settled != NOT_SETTLED) & (late <= 90)
    history = h.subset(np.flatnonzero(paid_within_90))
    model = fit_history(history)
    result = forecast(history, model, {"baseline": BASELINE}, options=Options(draws=8))
    assert result["results"]["baseline"]["recovery"]["180"] >= 0.995
