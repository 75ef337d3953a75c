"""Fitting the payment-behaviour model to a history: penalised maximum likelihood with EM.

The likelihood is that of a discrete-time hazard: every invoice-day at risk is a Bernoulli
trial that ends the invoice's time at risk when it succeeds. Invoice-days with the same
(class, static code, time code) share one hazard, so the data reduce to exposure and event
counts per cell (`aggregate`), and the M-step is a binomial regression on a few thousand
cells with an analytic gradient and Hessian. Debtors belong to latent classes (a debtor's
invoices share one); the E-step weighs each debtor's classes by how well they explain all
its invoices. Priors (DOMAIN.md's research ranges) hold what the data cannot identify, and
the result says which parameters are estimates and which rest on their prior.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from scipy import optimize, sparse

from simulator.exposure import Contacts, Segments, build_segments
from simulator.history import NOT_SETTLED, History, debtor_history
from simulator.model import (
    CHANNELS,
    N_STATIC_CODES,
    N_TIME_CODES,
    N_WINDOWS,
    Layout,
    history_class,
    static_code,
    static_design,
    time_design,
)
from simulator.replay import first_day

# Days after due beyond which the history is not used (the forecast horizon is at most 180).
FIT_CAP_DAYS = 365
DATA_SHARE_FOR_ESTIMATE = 0.5  # below this share of information from data, a parameter is a prior


def static_codes(history: History) -> np.ndarray:
    count, late_share, _ = debtor_history(history)
    return static_code(
        history.b2c,
        history.amount,
        history.e_invoice,
        history.disputed,
        history.fee_agreed,
        history_class(count, late_share),
    )


def recorded_contacts(
    history: History, invoices: np.ndarray | None = None, until: int | None = None
) -> Contacts:
    """The contacts in actions.csv (escalations are not contacts), days relative to due."""
    keep = history.act_action < 2
    if until is not None:
        keep &= history.act_day <= until
    inv = history.act_invoice[keep].astype(np.int64)
    contacts = Contacts(
        invoice=inv,
        day=history.act_day[keep].astype(np.int64) - history.due[inv],
        channel=history.act_channel[keep].astype(np.int64),
        notice=history.act_action[keep] == 1,
        fee=history.act_fee[keep] > 0,
    )
    if invoices is None:
        return contacts
    position = np.full(history.size, -1)
    position[invoices] = np.arange(len(invoices))
    selected = contacts.select(position[contacts.invoice] >= 0)
    return Contacts(
        position[selected.invoice], selected.day, selected.channel, selected.notice, selected.fee
    )


def prior(layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """Prior means and standard deviations (DOMAIN.md: a reminder is worth a few points, fading
    within days, later ones less; a consequence moves more than a soft reminder)."""
    mean = np.zeros(layout.size)
    sd = np.full(layout.size, 2.0)
    mean[layout.alpha], sd[layout.alpha] = -4.0, 10.0
    for c, _ in enumerate(CHANNELS):
        start = layout.bump.start + c * N_WINDOWS
        mean[start : start + N_WINDOWS] = (0.6, 0.3, 0.1)
        sd[start : start + N_WINDOWS] = 0.4
    mean[layout.rank], sd[layout.rank] = -0.2, 0.4
    mean[layout.fee], sd[layout.fee] = 0.0, 0.4
    mean[layout.notice], sd[layout.notice] = 0.4, 0.4
    mean[layout.delta], sd[layout.delta] = -2.0, 10.0
    return mean, sd


@dataclass
class Data:
    """A history prepared for fitting: segments, static codes, debtors."""

    segments: Segments
    static: np.ndarray  # per invoice
    debtor: np.ndarray  # per invoice
    b2c_debtor: np.ndarray  # per debtor
    n_debtors: int
    invoices: int
    index: np.ndarray  # the history index of each invoice
    history_size: int
    cells: np.ndarray = field(init=False)  # distinct (static code, time code) cells
    # Invoices × cells: days at risk survived, and events. Everything EM does per
    # iteration is a product with these (cell counts for the M-step, each invoice's
    # log-likelihood for the E-step), which sparse products do far faster than gathering
    # per segment.
    survived: sparse.csr_array = field(init=False)
    events: sparse.csr_array = field(init=False)
    days_by_cell: sparse.csr_array = field(init=False)  # cells × invoices, days at risk
    events_by_cell: sparse.csr_array = field(init=False)  # cells × invoices

    def __post_init__(self) -> None:
        s = self.segments
        # The code space is small (static × time codes), so a dense table compacts it in
        # one pass where np.unique would sort millions of segments.
        key = self.static[s.invoice] * N_TIME_CODES + s.code
        present = np.zeros(N_STATIC_CODES * N_TIME_CODES, dtype=bool)
        present[key] = True
        self.cells = np.flatnonzero(present)
        cell_of = (np.cumsum(present) - 1)[key]
        shape = (self.invoices, len(self.cells))
        where = (s.invoice, cell_of)
        self.survived = sparse.csr_array(((s.length - s.event).astype(np.float64), where), shape)
        self.events = sparse.csr_array((s.event.astype(np.float64), where), shape)
        self.days_by_cell = (self.survived + self.events).T.tocsr()
        self.events_by_cell = self.events.T.tocsr()


def prepare(history: History, as_of: int | None = None, invoices: np.ndarray | None = None) -> Data:
    """Exposure of the chosen invoices (default all) as seen on `as_of` (default the history's)."""
    as_of = history.as_of if as_of is None else as_of
    idx = np.arange(history.size) if invoices is None else np.asarray(invoices)
    due = history.due[idx].astype(np.int64)
    observed_to = np.minimum(as_of - due, FIT_CAP_DAYS)
    settled = history.settled[idx].astype(np.int64)
    settled_known = (settled != NOT_SETTLED) & (settled <= as_of)
    settled_rel = np.where(settled_known, settled - due, NOT_SETTLED)
    event = settled_known & (settled_rel <= observed_to)
    end = np.where(event, settled_rel, observed_to) + 1
    contacts = recorded_contacts(history, idx, until=as_of)
    segments = build_segments(first_day(history.issue[idx], history.due[idx]), end, event, contacts)
    debtor_b2c = np.zeros(len(history.debtor_ids), dtype=bool)
    debtor_b2c[history.debtor] = history.b2c
    return Data(
        segments,
        static_codes(history)[idx],
        history.debtor[idx].astype(np.int64),
        debtor_b2c,
        len(history.debtor_ids),
        len(idx),
        idx,
        history.size,
    )


def aggregate(
    data: Data, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cells with exposure: (class, static code, time code, days at risk, events), weighted by
    each invoice's class probabilities (`weights`: invoices × classes)."""
    classes = weights.shape[1]
    days = data.days_by_cell @ weights  # cells × classes
    events = data.events_by_cell @ weights
    out_k, out_cell, out_n, out_e = [], [], [], []
    for k in range(classes):
        n, e = days[:, k], events[:, k]
        used = np.flatnonzero(n > 1e-12)
        out_k.append(np.full(len(used), k))
        out_cell.append(data.cells[used])
        out_n.append(n[used])
        out_e.append(e[used])
    return (
        np.concatenate(out_k),
        np.concatenate(out_cell),
        np.concatenate(out_n),
        np.concatenate(out_e),
    )


def design(layout: Layout, klass: np.ndarray, cells: np.ndarray) -> np.ndarray:
    static = cells // N_TIME_CODES
    code = cells % N_TIME_CODES
    x = time_design(layout)[code]
    x[:, layout.beta] = static_design()[static]
    for k in range(1, layout.classes):
        x[:, layout.delta.start + k - 1] = klass == k
    return x


def _objective(
    theta: np.ndarray,
    x: np.ndarray,
    n: np.ndarray,
    e: np.ndarray,
    mean: np.ndarray,
    precision: np.ndarray,
) -> tuple[float, np.ndarray]:
    eta = x @ theta
    # log-likelihood of binomial cells: e·log σ(η) + (n − e)·log(1 − σ(η))
    log_lik = e @ eta - n @ np.logaddexp(0.0, eta)
    h = 1.0 / (1.0 + np.exp(-eta))
    grad = x.T @ (e - n * h)
    diff = theta - mean
    return -(log_lik - 0.5 * diff @ (precision * diff)), -(grad - precision * diff)


def _hessian(theta: np.ndarray, x: np.ndarray, n: np.ndarray, precision: np.ndarray) -> np.ndarray:
    h = 1.0 / (1.0 + np.exp(-(x @ theta)))
    return (x * (n * h * (1 - h))[:, None]).T @ x + np.diag(precision)


def m_step(
    x: np.ndarray,
    n: np.ndarray,
    e: np.ndarray,
    start: np.ndarray,
    mean: np.ndarray,
    precision: np.ndarray,
) -> np.ndarray:
    result = optimize.minimize(
        _objective,
        start,
        args=(x, n, e, mean, precision),
        jac=True,
        method="trust-exact",
        hess=lambda t, *a: _hessian(t, x, n, precision),
        options={"gtol": 1e-9, "maxiter": 200},
    )
    return result.x


def _segment_log_lik(data: Data, theta: np.ndarray, layout: Layout) -> np.ndarray:
    """Per invoice and class: log-likelihood of its days at risk (invoices × classes).

    Hazards are computed once per cell: an invoice's contribution is, over its cells,
    days survived·log(1 − h) + events·log h.
    """
    static = data.cells // N_TIME_CODES
    code = data.cells % N_TIME_CODES
    cell_eta = static_design()[static] @ theta[layout.beta] + time_design(layout)[code] @ theta
    eta = cell_eta[:, None] + np.r_[0.0, theta[layout.delta]][None, :]  # cells × classes
    log_survive = -np.logaddexp(0.0, eta)
    return np.asarray(data.survived @ log_survive + data.events @ (eta + log_survive))


@dataclass
class Fit:
    layout: Layout
    params: np.ndarray
    cov: np.ndarray
    prior_mean: np.ndarray
    prior_sd: np.ndarray
    data_share: np.ndarray  # share of each parameter's information that comes from data
    class_share: np.ndarray  # (b2b, b2c) × classes
    debtor_posterior: np.ndarray  # debtors × classes
    log_lik: float
    invoices: int
    iterations: int
    invoice_log_lik: np.ndarray  # history invoices × classes: each fitted invoice's own evidence
    fitted_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def names(self) -> list[str]:
        return self.layout.names()

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(np.diag(self.cov))

    def is_prior(self) -> np.ndarray:
        return self.data_share < DATA_SHARE_FOR_ESTIMATE

    def draws(self, count: int, seed: int = 0) -> np.ndarray:
        """Parameter draws from the Laplace approximation (the first is the estimate itself)."""
        rng = np.random.default_rng(seed)
        draws = rng.multivariate_normal(self.params, self.cov, size=count, method="cholesky")
        draws[0] = self.params
        return draws

    def weights_without_own(self, debtor: np.ndarray, invoices: np.ndarray) -> np.ndarray:
        """Class probabilities of each invoice from everything *but* its own days at risk.

        The debtor posterior has seen how the invoice went; a replay that conditions on the
        invoice still being unpaid day by day must start from what was known without that.
        """
        log_w = (
            np.log(np.maximum(self.debtor_posterior[debtor], 1e-300))
            - self.invoice_log_lik[invoices]
        )
        log_w -= log_w.max(axis=1, keepdims=True)
        weights = np.exp(log_w)
        return weights / weights.sum(axis=1, keepdims=True)

    def report(self) -> list[dict[str, object]]:
        return [
            {
                "name": name,
                "estimate": float(v),
                "se": float(s),
                "source": "prior" if p else "data",
                "data_share": float(d),
            }
            for name, v, s, p, d in zip(
                self.names, self.params, self.se, self.is_prior(), self.data_share, strict=False
            )
        ]


def fit(
    data: Data,
    classes: int = 2,
    penalised: bool = True,
    max_iterations: int = 50,
    tolerance: float = 1e-6,
    progress: object | None = None,
) -> Fit:
    layout = Layout(classes)
    mean, sd = prior(layout)
    precision = 1.0 / sd**2 if penalised else np.zeros(layout.size)
    theta = mean.copy()
    debtor_w = _initial_posterior(data, classes)
    class_share = np.full((2, classes), 1.0 / classes)
    previous = -np.inf
    iterations = 0
    for iterations in range(1, max_iterations + 1):
        klass, cells, n, e = aggregate(data, debtor_w[data.debtor])
        x = design(layout, klass, cells)
        theta = m_step(x, n, e, theta, mean, precision)
        if classes == 1:
            break
        ll = _segment_log_lik(data, theta, layout)
        debtor_ll = np.zeros((data.n_debtors, classes))
        for k in range(classes):
            debtor_ll[:, k] = np.bincount(data.debtor, weights=ll[:, k], minlength=data.n_debtors)
        type_of = data.b2c_debtor.astype(int)
        joint = debtor_ll + np.log(np.maximum(class_share[type_of], 1e-12))
        top = joint.max(axis=1, keepdims=True)
        debtor_w = np.exp(joint - top)
        total = debtor_w.sum(axis=1, keepdims=True)
        debtor_w /= total
        log_lik = float((np.log(total) + top).sum())
        for t in (0, 1):
            chosen = (type_of == t) & (np.bincount(data.debtor, minlength=data.n_debtors) > 0)
            if chosen.any():
                class_share[t] = debtor_w[chosen].mean(axis=0)
        if progress is not None:
            progress(iterations, log_lik)  # type: ignore[operator]
        if abs(log_lik - previous) <= tolerance * abs(log_lik):
            break
        previous = log_lik
    klass, cells, n, e = aggregate(data, debtor_w[data.debtor])
    x = design(layout, klass, cells)
    data_info = _hessian(theta, x, n, np.zeros(layout.size))
    hessian = data_info + np.diag(precision)
    cov = np.linalg.inv(hessian)
    data_share = np.diag(data_info) / np.maximum(np.diag(hessian), 1e-300)
    if classes == 1:
        log_lik = float(-_objective(theta, x, n, e, mean, np.zeros(layout.size))[0])
    own = np.zeros((data.history_size, classes))
    own[data.index] = _segment_log_lik(data, theta, layout)
    return Fit(
        layout,
        theta,
        cov,
        mean,
        sd,
        data_share,
        class_share,
        debtor_w,
        log_lik,
        data.invoices,
        iterations,
        own,
    )


def _initial_posterior(data: Data, classes: int) -> np.ndarray:
    """Start EM from a sensible split: debtors with long-unpaid invoices lean to the struggling class."""
    if classes == 1:
        return np.ones((data.n_debtors, 1))
    s = data.segments
    long_unpaid = np.zeros(data.invoices, dtype=bool)
    last = s.start + s.length
    tail = np.flatnonzero(~s.event & (last > 60))
    long_unpaid[s.invoice[tail]] = True
    struggling = np.bincount(data.debtor, weights=long_unpaid, minlength=data.n_debtors) > 0
    w = np.zeros((data.n_debtors, classes))
    w[:, 1] = np.where(struggling, 0.8, 0.1)
    w[:, 0] = 1.0 - w[:, 1:].sum(axis=1)
    return w
