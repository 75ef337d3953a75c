"""Classes with their own contact effects: the fit's derivatives and the replay agree with
the model's definition (issue 9: classes differ in how they respond, shrunk to a shared effect)."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.fit import (
    _cell_hessian,
    _cell_objective,
    _Cells,
    aggregate,
    cell_eta,
    design,
    prepare,
    prior,
)
from simulator.model import CLASS_CONTACT_NAMES, N_TIME_CODES, Layout
from simulator.replay import linear_parts
from simulator.worlds import generate


@pytest.fixture(scope="module")
def data():
    return prepare(generate("retail-b2c", 6_000, 4).history)


@pytest.fixture(scope="module")
def layout():
    return Layout(3, class_contacts=True)


def _theta(layout: Layout) -> np.ndarray:
    rng = np.random.default_rng(1)
    theta = rng.normal(0.0, 0.3, layout.size)
    theta[layout.alpha] -= 4.0
    return theta


def test_every_class_has_its_own_contact_parameters_and_one_class_none():
    layout = Layout(3, class_contacts=True)
    names = layout.names()
    own = [n for n in names if n.startswith("class_effect[")]
    assert len(own) == 3 * len(CLASS_CONTACT_NAMES) == len(set(own))
    assert layout.size == len(names)
    assert Layout(1, class_contacts=True).names() == Layout(1).names()  # nothing to differ
    mean, sd = prior(layout)
    assert np.all(mean[layout.class_contact] == 0.0) and np.all(sd[layout.class_contact] < 1)


def test_the_analytic_gradient_and_hessian_are_those_of_the_dense_design(data, layout):
    weights = np.random.default_rng(2).dirichlet(np.ones(3), data.n_debtors)[data.debtor]
    klass, cells, n, e = aggregate(data, weights)
    compact = _Cells(layout, klass, cells)
    theta = _theta(layout)
    mean, sd = prior(layout)
    precision = 1.0 / sd**2
    x = design(layout, klass, cells)
    eta = x @ theta
    assert compact.eta(theta) == pytest.approx(eta, abs=1e-12)
    h = 1.0 / (1.0 + np.exp(-eta))
    _, gradient = _cell_objective(theta, compact, n, e, mean, precision)
    dense_gradient = -(x.T @ (e - n * h) - precision * (theta - mean))
    assert gradient == pytest.approx(dense_gradient, rel=1e-9, abs=1e-6)
    dense_hessian = x.T @ (x * (n * h * (1 - h))[:, None]) + np.diag(precision)
    assert _cell_hessian(theta, compact, n, precision) == pytest.approx(
        dense_hessian, rel=1e-9, abs=1e-6
    )
    # and the gradient is the objective's: a central difference along a random direction
    step = np.random.default_rng(3).normal(size=layout.size) * 1e-5
    up = _cell_objective(theta + step, compact, n, e, mean, precision)[0]
    down = _cell_objective(theta - step, compact, n, e, mean, precision)[0]
    assert (up - down) / 2 == pytest.approx(gradient @ step, rel=1e-5)


def test_the_replay_uses_the_hazard_the_fit_estimated(data, layout):
    theta = _theta(layout)
    static_eta, time_eta = linear_parts(theta, layout)
    cells = data.cells
    replayed = static_eta[0, cells // N_TIME_CODES][:, None] + time_eta[0, cells % N_TIME_CODES]
    assert replayed == pytest.approx(cell_eta(layout, theta, cells), abs=1e-12)
    # a class's own bump changes only that class's hazard, and only where a contact acts
    moved = theta.copy()
    moved[layout.class_contact_of(1).start] += 1.0  # class 1's bump in window 0..2
    change = cell_eta(layout, moved, cells) - cell_eta(layout, theta, cells)
    assert np.all(change[:, [0, 2]] == 0.0)
    assert 0 < np.count_nonzero(change[:, 1]) < len(cells)
