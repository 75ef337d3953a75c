"""The fit says when not to trust it, and its uncertainty counts debtors, not invoices."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.fit import fit, prepare
from simulator.forecast import Options, forecast
from simulator.history import History
from simulator.model import CHANNELS
from simulator.worlds import generate
from tests.simulator.scenarios import BASELINE


@pytest.fixture(scope="module")
def world():
    return generate("wholesale-b2b", 8_000, 9)


def test_a_singular_hessian_falls_back_to_the_pseudo_inverse_with_a_warning(world):
    h = world.history
    phone = h.act_channel == CHANNELS.index("phone")
    keep = ~phone
    for name in ("act_invoice", "act_day", "act_action", "act_channel", "act_fee"):
        setattr(h, name, getattr(h, name)[keep])
    try:
        # unpenalised, a channel that never appears has no information at all
        model = fit(prepare(h), classes=1, penalised=False)
    finally:
        world.history = generate("wholesale-b2b", 8_000, 9).history
    assert model.convergence["covariance"] == "pseudo-inverse"
    assert any("Hessian is singular" in w for w in model.warnings)
    assert np.isfinite(model.cov).all()
    assert model.convergence["optimiser_success"] is True


def test_em_that_runs_out_of_iterations_says_so(world):
    model = fit(prepare(world.history), classes=2, max_iterations=2, starts=1)
    assert model.convergence["em_converged"] is False
    assert model.convergence["em_iterations"] == 2
    assert any("did not converge" in w for w in model.warnings)
    converged = fit(prepare(world.history), classes=2, starts=1)
    assert converged.convergence["em_converged"] is True
    assert converged.warnings == []
    # and every forecast made with the unconverged fit repeats it
    result = forecast(world.history, model, {"baseline": BASELINE}, options=Options(draws=4))
    assert any("did not converge" in w for w in result["warnings"])


def _each_invoice_four_times(h: History) -> History:
    """Every invoice copied four times under the same debtor: four times the rows, no more
    independent evidence."""
    n, copies = h.size, 4
    offset = np.repeat(np.arange(copies) * n, 1)

    def rep(a: np.ndarray) -> np.ndarray:
        return np.concatenate([a] * copies)

    def shifted(a: np.ndarray) -> np.ndarray:
        return np.concatenate([a + o for o in offset]).astype(np.int32)

    return History(
        as_of=h.as_of,
        currency=h.currency,
        invoice_id=np.array(
            [f"{i}-{c}" for c in range(copies) for i in h.invoice_id], dtype=object
        ),
        debtor=rep(h.debtor),
        debtor_ids=h.debtor_ids,
        b2c=rep(h.b2c),
        issue=rep(h.issue),
        due=rep(h.due),
        amount=rep(h.amount),
        e_invoice=rep(h.e_invoice),
        disputed=rep(h.disputed),
        fee_agreed=rep(h.fee_agreed),
        pay_invoice=shifted(h.pay_invoice),
        pay_day=rep(h.pay_day),
        pay_amount=rep(h.pay_amount),
        act_invoice=shifted(h.act_invoice),
        act_day=rep(h.act_day),
        act_action=rep(h.act_action),
        act_channel=rep(h.act_channel),
        act_fee=rep(h.act_fee),
    )


def test_copies_of_a_debtors_invoices_do_not_shrink_the_uncertainty(world):
    once = fit(prepare(world.history), classes=1)
    four = fit(prepare(_each_invoice_four_times(world.history)), classes=1)
    # (the debtor's record differs a little: copies count as invoices issued before)
    assert four.params == pytest.approx(once.params, abs=0.1)
    identified = ~once.is_prior()
    ratio = four.se[identified] / once.se[identified]
    # invoice-independent errors would halve (1/√4); debtor-clustered ones stay put
    assert np.median(ratio) == pytest.approx(1.0, abs=0.1), ratio.round(2)
