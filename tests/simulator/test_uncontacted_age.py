"""An invoice no contact has reached yet ages: its hazard has levels by days since arrival
(`model.UNCONTACTED_LOWER`), which the first delivered contact ends. So a policy that
contacts late, or never, is forecast from how unreminded invoices pay in the history
(before due, and before the routine's first contact), not from the contacted ones."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.exposure import Contacts, ContactState, build_segments
from simulator.fit import fit, prepare
from simulator.forecast import Options, default_cohort, forecast
from simulator.model import N_AGES, UNCONTACTED_LOWER, Layout
from simulator.policy import parse_policies
from simulator.worlds import WORLDS, generate, true_params

LETTER = 2  # model.CHANNELS: delivered two days after sending


def _ages(state: ContactState, invoice: int, days: list[int]) -> list[int]:
    t = np.array(days)
    return (state.codes(np.full(len(t), invoice), t) % N_AGES).tolist()


def test_an_uncontacted_invoice_ages_from_its_arrival_until_a_contact_reaches_it():
    # invoice 0: issued 20 days before due, a letter sent on day 5 (delivered on day 7);
    # invoice 1: the same, never contacted; invoice 2: the same, but disputed
    contacts = Contacts(
        np.array([0]), np.array([5]), np.array([LETTER]), np.array([False]), np.array([False])
    )
    start = np.array([-20, -20, -20])
    state = ContactState(3, contacts, start, disputed=np.array([False, False, True]))
    days = [-20, -7, -6, 6, 7, 9, 10, 60, 200]
    assert _ages(state, 0, days) == [0, 0, 1, 1, 0, 0, 0, 0, 0]  # sent on 5 is not enough
    assert _ages(state, 1, days) == [0, 0, 1, 1, 1, 1, 2, 2, 2]
    assert _ages(state, 2, days) == [0] * len(days)
    assert UNCONTACTED_LOWER.tolist() == [0, 14, 30]


def test_exposure_segments_are_cut_where_the_age_changes():
    start, end = np.array([-20]), np.array([40])
    segments = build_segments(start, end, np.array([False]), Contacts.empty())
    ages = dict(zip(segments.start.tolist(), (segments.code % N_AGES).tolist(), strict=True))
    assert ages[-20] == 0 and ages[-6] == 1 and ages[10] == 2
    assert segments.length.sum() == 60
    # each segment holds one time code: no cut inside a segment would change it
    state = ContactState(1, Contacts.empty(), start)
    for s, n, code in zip(segments.start, segments.length, segments.code, strict=True):
        days = np.arange(s, s + n)
        assert set(state.codes(np.zeros(len(days), dtype=np.int64), days).tolist()) == {code}


@pytest.fixture(scope="module")
def forgetful():
    world = generate("forgetful", 60_000, 3)
    model = fit(prepare(world.history))
    return world, model


@pytest.mark.slow
def test_the_fit_recovers_how_much_unreminded_invoices_slow_down(forgetful):
    _, model = forgetful
    layout = model.layout
    truth = true_params(Layout(layout.classes), WORLDS["forgetful"])[layout.uncontacted]
    z = (model.params[layout.uncontacted] - truth) / model.se[layout.uncontacted]
    assert np.all(np.abs(z) < 3), (model.params[layout.uncontacted], truth, z)


@pytest.mark.slow
def test_a_policy_without_contacts_is_forecast_from_how_unreminded_invoices_pay(forgetful):
    world, model = forgetful
    nothing = parse_policies(
        {"name": "nothing", "segment": {}, "steps": [], "interest": {"mode": "none"}}
    )
    cohort = default_cohort(world.history)
    result = forecast(world.history, model, {"nothing": nothing}, cohort, Options(draws=16))
    outcome = world.true_outcome(nothing[0], cohort.invoices)
    for d in (30, 60, 90):
        true = float(outcome["settled_share"][np.searchsorted(outcome["days"], d)])
        assert result["results"]["nothing"]["recovery"][str(d)] == pytest.approx(true, abs=0.01)
