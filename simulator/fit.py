"""Fitting the payment-behaviour model to a history: penalised maximum likelihood with EM.

The likelihood is that of a discrete-time hazard: every invoice-day at risk is a Bernoulli
trial that ends the invoice's time at risk when it succeeds. Invoice-days with the same
(class, static code, time code) share one hazard, so the data reduce to exposure and event
counts per cell (`aggregate`), and the M-step is a binomial regression on a few thousand
cells with an analytic gradient and Hessian. Debtors belong to latent classes (a debtor's
invoices share one); the E-step weighs each debtor's classes by how well they explain all
its invoices. Priors (DOMAIN.md's research ranges) hold what the data cannot identify, and
the result says which parameters are estimates and which rest on their prior.

How many classes is not assumed: `fit_history` fits 1..MAX_CLASSES on the history before a
cut and scores each on the invoices issued after it (a debtor's future predicted from its
own past), and keeps the fewest classes the held-out likelihood supports. Each candidate is
fitted from several starts that cannot coincide (debtors ranked by how late they pay, split
into as many groups as classes), so two classes never start at a saddle where they are one.
Tunables live in `simulator.defaults`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from scipy import optimize, sparse
from scipy.special import logsumexp
from threadpoolctl import threadpool_limits

from simulator import defaults
from simulator.exposure import Contacts, Segments, build_segments
from simulator.history import NOT_SETTLED, History, debtor_record
from simulator.model import (
    CHANNELS,
    CLASS_CONTACT_NAMES,
    N_STATIC_CODES,
    N_TIME_CODES,
    N_WINDOWS,
    Layout,
    amount_edges,
    class_time_design,
    history_class,
    static_code,
    static_design,
)
from simulator.replay import first_day

FIT_CAP_DAYS = defaults.FIT_CAP_DAYS
DATA_SHARE_FOR_ESTIMATE = defaults.DATA_SHARE_FOR_ESTIMATE


def static_codes(history: History) -> np.ndarray:
    """Each invoice's static code; amount bins from this history's own amounts."""
    return static_code(
        history.b2c,
        history.amount,
        history.e_invoice,
        history.disputed,
        history.fee_agreed,
        history_class(*debtor_record(history)),
        amount_edges(history.amount),
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
    mean = np.full(layout.size, defaults.PRIOR_COVARIATE[0])
    sd = np.full(layout.size, defaults.PRIOR_COVARIATE[1])
    mean[layout.alpha], sd[layout.alpha] = defaults.PRIOR_BASELINE
    bump_mean, bump_sd = defaults.PRIOR_BUMP
    for c, _ in enumerate(CHANNELS):
        start = layout.bump.start + c * N_WINDOWS
        mean[start : start + N_WINDOWS] = bump_mean
        sd[start : start + N_WINDOWS] = bump_sd
    mean[layout.rank], sd[layout.rank] = defaults.PRIOR_LATER_CONTACT
    mean[layout.fee], sd[layout.fee] = defaults.PRIOR_FEE
    mean[layout.notice], sd[layout.notice] = defaults.PRIOR_NOTICE
    mean[layout.uncontacted], sd[layout.uncontacted] = defaults.PRIOR_UNCONTACTED
    mean[layout.delta], sd[layout.delta] = defaults.PRIOR_CLASS_SHIFT
    mean[layout.class_contact], sd[layout.class_contact] = 0.0, defaults.PRIOR_CLASS_CONTACT_SD
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
    as_of: int = 0
    currency: str = ""
    fingerprint: str = ""
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
    segments = build_segments(
        first_day(history.issue[idx], history.due[idx]), end, event, contacts, history.disputed[idx]
    )
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
        as_of,
        history.currency,
        fingerprint(history),
    )


def fingerprint(history: History) -> str:
    """A digest of everything the fit reads from a history, so a saved model knows whether it
    is being applied to the data it was fitted on."""
    digest = hashlib.sha256()
    digest.update(f"{history.as_of}|{history.currency}|{history.size}".encode())
    digest.update("\x1f".join(map(str, history.invoice_id)).encode())
    for array in (
        history.debtor,
        history.b2c,
        history.issue,
        history.due,
        history.amount,
        history.e_invoice,
        history.disputed,
        history.fee_agreed,
        history.settled,
        history.act_invoice,
        history.act_day,
        history.act_action,
        history.act_channel,
        history.act_fee,
    ):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:32]


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
    x = class_time_design(layout)[klass, code]
    x[:, layout.beta] = static_design()[static]
    return x


def cell_eta(layout: Layout, theta: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """logit h of every cell in every class (cells × classes)."""
    static = cells // N_TIME_CODES
    code = cells % N_TIME_CODES
    by_class = class_time_design(layout) @ theta  # classes × time codes
    return np.asarray((static_design() @ theta[layout.beta])[static][:, None] + by_class[:, code].T)


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
    # einsum, not BLAS: on a loaded two-core machine threaded BLAS was ten times slower here.
    return np.einsum("ij,ik->jk", x * (n * h * (1 - h))[:, None], x) + np.diag(precision)


def m_step(
    x: np.ndarray,
    n: np.ndarray,
    e: np.ndarray,
    start: np.ndarray,
    mean: np.ndarray,
    precision: np.ndarray,
) -> np.ndarray:
    return _m_step(x, n, e, start, mean, precision).x


def _m_step(
    x: np.ndarray,
    n: np.ndarray,
    e: np.ndarray,
    start: np.ndarray,
    mean: np.ndarray,
    precision: np.ndarray,
) -> optimize.OptimizeResult:
    return optimize.minimize(
        _objective,
        start,
        args=(x, n, e, mean, precision),
        jac=True,
        method="trust-exact",
        hess=lambda t, *a: _hessian(t, x, n, precision),
        options={
            "gtol": defaults.OPTIMISER_GRADIENT_TOLERANCE,
            "maxiter": defaults.OPTIMISER_MAX_ITERATIONS,
        },
    )


class _Cells:
    """The M-step's design without materialising it: a cell's linear predictor is its static
    code's part plus its class's time part (the time code's design for that class: baseline,
    contact effects, the class shift and the class's own contact deviations), so X·θ, Xᵀr
    and XᵀWX reduce to sums by static code, by (class, time code) and by (class, time code,
    static code), followed by products with the small static and time designs.

    Dense cells × parameters products were the fit's cost; these are bincounts.
    """

    def __init__(self, layout: Layout, klass: np.ndarray, cells: np.ndarray) -> None:
        self.layout = layout
        statics, self.si = np.unique(cells // N_TIME_CODES, return_inverse=True)
        codes, self.ti = np.unique(cells % N_TIME_CODES, return_inverse=True)
        self.k = klass.astype(np.int64)
        self.s_design = static_design()[statics]  # static codes × covariates
        self.t_design = class_time_design(layout)[:, codes]  # classes × time codes × params
        self.n_s, self.n_t = len(statics), len(codes)
        self.kt = self.k * self.n_t + self.ti
        self.kts = self.kt * self.n_s + self.si

    def eta(self, theta: np.ndarray) -> np.ndarray:
        return np.asarray(
            (self.s_design @ theta[self.layout.beta])[self.si]
            + (self.t_design @ theta)[self.k, self.ti]
        )

    def gradient(self, r: np.ndarray) -> np.ndarray:
        classes = self.layout.classes
        by_kt = np.bincount(self.kt, r, minlength=classes * self.n_t).reshape(classes, self.n_t)
        g = np.einsum("ktp,kt->p", self.t_design, by_kt)
        g[self.layout.beta] += self.s_design.T @ np.bincount(self.si, r, minlength=self.n_s)
        return np.asarray(g)

    def information(self, w: np.ndarray) -> np.ndarray:
        """XᵀWX."""
        layout, classes = self.layout, self.layout.classes
        t, s = self.t_design, self.s_design
        by_kt = np.bincount(self.kt, w, minlength=classes * self.n_t).reshape(classes, self.n_t)
        h = np.zeros((layout.size, layout.size))
        for k in range(classes):
            h += t[k].T @ (t[k] * by_kt[k][:, None])
        by_s = np.bincount(self.si, w, minlength=self.n_s)
        h[layout.beta, layout.beta] += s.T @ (s * by_s[:, None])
        triples = np.bincount(self.kts, w, minlength=classes * self.n_t * self.n_s).reshape(
            classes, self.n_t, self.n_s
        )
        cross = sum(t[k].T @ (triples[k] @ s) for k in range(classes))  # params × covariates
        h[:, layout.beta] += cross
        h[layout.beta, :] += np.asarray(cross).T
        return h


def _cell_objective(
    theta: np.ndarray,
    cells: _Cells,
    n: np.ndarray,
    e: np.ndarray,
    mean: np.ndarray,
    precision: np.ndarray,
) -> tuple[float, np.ndarray]:
    eta = cells.eta(theta)
    log_lik = e @ eta - n @ np.logaddexp(0.0, eta)
    h = 1.0 / (1.0 + np.exp(-eta))
    grad = cells.gradient(e - n * h)
    diff = theta - mean
    return -(log_lik - 0.5 * diff @ (precision * diff)), -(grad - precision * diff)


def _cell_hessian(
    theta: np.ndarray, cells: _Cells, n: np.ndarray, precision: np.ndarray
) -> np.ndarray:
    h = 1.0 / (1.0 + np.exp(-cells.eta(theta)))
    return cells.information(n * h * (1 - h)) + np.diag(precision)


def _cell_m_step(
    cells: _Cells,
    n: np.ndarray,
    e: np.ndarray,
    start: np.ndarray,
    mean: np.ndarray,
    precision: np.ndarray,
) -> optimize.OptimizeResult:
    result = optimize.minimize(
        _cell_objective,
        start,
        args=(cells, n, e, mean, precision),
        jac=True,
        method="trust-exact",
        hess=lambda t, *a: _cell_hessian(t, cells, n, precision),
        options={
            "gtol": defaults.OPTIMISER_GRADIENT_TOLERANCE,
            "maxiter": defaults.OPTIMISER_MAX_ITERATIONS,
        },
    )
    # trust-exact reports failure when it stands at the optimum and cannot improve further;
    # a vanishing gradient is success whatever its message.
    scale = max(1.0, float(np.abs(n).sum()) ** 0.5)
    result.success = bool(result.success) or float(np.abs(result.jac).max()) < 1e-6 * scale
    return result


def _segment_log_lik(data: Data, theta: np.ndarray, layout: Layout) -> np.ndarray:
    """Per invoice and class: log-likelihood of its days at risk (invoices × classes).

    Hazards are computed once per cell: an invoice's contribution is, over its cells,
    days survived·log(1 − h) + events·log h.
    """
    eta = cell_eta(layout, theta, data.cells)  # cells × classes
    log_survive = -np.logaddexp(0.0, eta)
    return np.asarray(data.survived @ log_survive + data.events @ (eta + log_survive))


@dataclass
class Variant:
    """One of the models the class selection compared: enough of it to forecast with."""

    layout: Layout
    params: np.ndarray
    class_share: np.ndarray  # (b2b, b2c) × classes
    debtor_posterior: np.ndarray  # debtors × classes, on the fitted history

    @property
    def classes(self) -> int:
        return self.layout.classes


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
    # Optimiser success, EM iterations, starts and how the covariance was obtained.
    convergence: dict[str, Any] = field(default_factory=dict)
    # Things a user of this fit must know (non-convergence, a singular Hessian): forecasts
    # built on the fit repeat them.
    warnings: list[str] = field(default_factory=list)
    # The class-selection candidates and their held-out scores (None: classes were given).
    selection: dict[str, Any] | None = None
    currency: str = ""
    as_of: int = 0
    fingerprint: str = ""
    # What others store with the model (the logging policy, ...): kept verbatim.
    extra: dict[str, Any] = field(default_factory=dict)
    # How well the model did in rolling backtests of its own history (`backtest.summary`):
    # None until a backtest is attached. The service keeps it beside each tenant's model.
    backtest: dict[str, Any] | None = None
    # The models the class selection compared (each number of classes, fitted on the same
    # sample before its cut), with their debtor posteriors on this history: how far their
    # forecasts disagree is the model-form band of calibrated intervals (`forecast`).
    variants: list[Variant] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return self.layout.names()

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(np.diag(self.cov))

    def is_prior(self) -> np.ndarray:
        return self.data_share < DATA_SHARE_FOR_ESTIMATE

    def draws(self, count: int, seed: int = 0) -> np.ndarray:
        """Parameter draws from the normal approximation (the first is the estimate itself)."""
        rng = np.random.default_rng(seed)
        draws = rng.multivariate_normal(self.params, self.cov, size=count, method="eigh")
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


@dataclass
class _Run:
    """One EM run from one start."""

    theta: np.ndarray
    debtor_w: np.ndarray
    class_share: np.ndarray
    log_lik: float
    penalised: float
    iterations: int
    converged: bool  # EM's relative change fell below the tolerance
    optimiser_success: bool  # the last M-step's optimiser reported success
    optimiser_message: str


def _debtor_log_lik(data: Data, invoice_ll: np.ndarray) -> np.ndarray:
    classes = invoice_ll.shape[1]
    out = np.zeros((data.n_debtors, classes))
    for k in range(classes):
        out[:, k] = np.bincount(data.debtor, weights=invoice_ll[:, k], minlength=data.n_debtors)
    return out


def _e_step(
    data: Data, theta: np.ndarray, layout: Layout, class_share: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """Debtor posteriors under `theta` and `class_share`, the updated shares, and the
    observed-data log-likelihood."""
    classes = layout.classes
    debtor_ll = _debtor_log_lik(data, _segment_log_lik(data, theta, layout))
    type_of = data.b2c_debtor.astype(int)
    joint = debtor_ll + np.log(np.maximum(class_share[type_of], 1e-12))
    top = joint.max(axis=1, keepdims=True)
    debtor_w = np.exp(joint - top)
    total = debtor_w.sum(axis=1, keepdims=True)
    debtor_w /= total
    present = np.bincount(data.debtor, minlength=data.n_debtors) > 0
    log_lik = float((np.log(total[present]) + top[present]).sum())
    share = class_share.copy()
    for t in (0, 1):
        chosen = (type_of == t) & present
        if chosen.any():
            share[t] = debtor_w[chosen].mean(axis=0)
    assert share.shape[1] == classes
    return debtor_w, share, log_lik


def _shares_of(data: Data, debtor_w: np.ndarray) -> np.ndarray:
    present = np.bincount(data.debtor, minlength=data.n_debtors) > 0
    share = np.full((2, debtor_w.shape[1]), 1.0 / debtor_w.shape[1])
    for t in (0, 1):
        chosen = (data.b2c_debtor.astype(int) == t) & present
        if chosen.any():
            share[t] = debtor_w[chosen].mean(axis=0)
    return share


def _em(
    data: Data,
    layout: Layout,
    debtor_w: np.ndarray,
    mean: np.ndarray,
    precision: np.ndarray,
    max_iterations: int,
    tolerance: float,
    progress: Callable[[int, float], None] | None,
) -> _Run:
    classes = layout.classes
    theta = mean.copy()
    class_share = _shares_of(data, debtor_w)
    previous = -np.inf
    log_lik = -np.inf
    converged = False
    result: optimize.OptimizeResult | None = None
    iterations = 0
    # Every (class, cell) pair once, class-major; pairs without weight carry n = e = 0.
    cells = _Cells(
        layout, np.repeat(np.arange(classes), len(data.cells)), np.tile(data.cells, classes)
    )
    for iterations in range(1, max_iterations + 1):
        weights = debtor_w[data.debtor]
        n = np.asarray(data.days_by_cell @ weights).T.ravel()
        e = np.asarray(data.events_by_cell @ weights).T.ravel()
        result = _cell_m_step(cells, n, e, theta, mean, precision)
        theta = result.x
        if classes == 1:
            log_lik = float(-_cell_objective(theta, cells, n, e, mean, np.zeros(layout.size))[0])
            converged = True
            break
        debtor_w, class_share, log_lik = _e_step(data, theta, layout, class_share)
        if progress is not None:
            progress(iterations, log_lik)
        if abs(log_lik - previous) <= tolerance * abs(log_lik):
            converged = True
            break
        previous = log_lik
    assert result is not None
    diff = theta - mean
    return _Run(
        theta,
        debtor_w,
        class_share,
        log_lik,
        log_lik - 0.5 * float(diff @ (precision * diff)),
        iterations,
        converged,
        bool(result.success),
        str(result.message),
    )


def _order_classes(run: _Run, layout: Layout) -> _Run:
    """Class 0 the promptest payers, then by falling hazard shift: labels mean the same in
    every fit, so restarts and saved models compare."""
    shifts = np.r_[0.0, run.theta[layout.delta]]
    order = np.argsort(-shifts, kind="stable")
    theta = run.theta.copy()
    theta[layout.alpha] += shifts[order[0]]
    theta[layout.delta] = shifts[order[1:]] - shifts[order[0]]
    if layout.has_class_contacts:
        own = run.theta[layout.class_contact].reshape(layout.classes, -1)
        theta[layout.class_contact] = own[order].ravel()
    run.theta = theta
    run.debtor_w = run.debtor_w[:, order]
    run.class_share = run.class_share[:, order]
    return run


def fit(
    data: Data,
    classes: int = 2,
    penalised: bool = True,
    max_iterations: int = defaults.EM_MAX_ITERATIONS,
    tolerance: float = defaults.EM_TOLERANCE,
    progress: Callable[[int, float], None] | None = None,
    starts: int = defaults.EM_STARTS,
    initial: list[np.ndarray] | None = None,
    seed: int = 0,
    covariance: bool = True,
    class_contacts: bool | None = None,
    prior_override: Mapping[str, tuple[float, float]] | None = None,
) -> Fit:
    """Penalised maximum likelihood for a given number of classes, best of several starts.

    `initial` adds starts of its own (debtors × classes posteriors) to the `starts` made
    from the debtors' lateness ranks. Without `covariance` the covariance is the prior's
    (class-selection candidates need only their likelihood). `class_contacts` gives each
    class its own contact effects (default `defaults.CLASS_CONTACT_EFFECTS`).
    `prior_override` (parameter name → mean, sd) replaces the default prior of those
    parameters: the agency's pooled estimates across its clients.
    """
    if class_contacts is None:
        class_contacts = defaults.CLASS_CONTACT_EFFECTS
    # One BLAS thread: the products here are small and many, and threaded BLAS spinning on
    # a shared two-core machine made the fit three to ten times slower (measured).
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit(
            data,
            classes,
            penalised,
            max_iterations,
            tolerance,
            progress,
            starts,
            initial,
            seed,
            covariance,
            class_contacts,
            prior_override,
        )


def _fit(
    data: Data,
    classes: int,
    penalised: bool,
    max_iterations: int,
    tolerance: float,
    progress: Callable[[int, float], None] | None,
    starts: int,
    initial: list[np.ndarray] | None,
    seed: int,
    covariance: bool,
    class_contacts: bool,
    prior_override: Mapping[str, tuple[float, float]] | None = None,
) -> Fit:
    layout = Layout(classes, class_contacts)
    mean, sd = prior(layout)
    for i, name in enumerate(layout.names()):
        if prior_override and name in prior_override:
            mean[i], sd[i] = prior_override[name]
    precision = 1.0 / sd**2 if penalised else np.zeros(layout.size)
    begins = [
        _initial_posterior(data, classes, s + 1000 * seed if s else 0)
        for s in range(1 if classes == 1 else starts)
    ]
    begins += list(initial or [])
    runs = [
        _em(data, layout, w, mean, precision, max_iterations, tolerance, progress) for w in begins
    ]
    best = max(runs, key=lambda r: r.penalised)
    best = _order_classes(best, layout)
    # The final E-step at the chosen parameters: the posterior a saved model reproduces.
    if classes > 1:
        best.debtor_w, _, best.log_lik = _e_step(data, best.theta, layout, best.class_share)
    theta = best.theta
    klass, cell_ids, n, _ = aggregate(data, best.debtor_w[data.debtor])
    data_info = _cell_hessian(theta, _Cells(layout, klass, cell_ids), n, np.zeros(layout.size))
    hessian = data_info + np.diag(precision)
    found: list[str] = []
    bread, how = _inverse(hessian, found)
    if covariance:
        outer, missing = _debtor_scores(data, theta, layout, best.debtor_w)
        observed_info = hessian - missing
        try:
            if how == "inverse" and layout.classes > 1:
                np.linalg.cholesky(observed_info)
                bread = np.linalg.inv(observed_info)
        except np.linalg.LinAlgError:
            found.append(
                "the observed information is not positive definite (the classes are barely "
                "told apart): the uncertainty leaves out what not knowing debtors' classes costs"
            )
        cov = bread @ (outer + np.diag(precision)) @ bread
    else:
        cov = np.diag(np.where(precision > 0, 1.0 / np.maximum(precision, 1e-300), 0.0))
    cov = (cov + cov.T) / 2
    data_share = np.diag(data_info) / np.maximum(np.diag(hessian), 1e-300)
    if not best.converged:
        found.append(
            f"EM did not converge in {best.iterations} iterations ({classes} classes): "
            "estimates may still move"
        )
    if not best.optimiser_success:
        found.append(f"the optimiser did not report success: {best.optimiser_message}")
    own = np.zeros((data.history_size, classes))
    own[data.index] = _segment_log_lik(data, theta, layout)
    convergence = {
        "em_iterations": best.iterations,
        "em_converged": best.converged,
        "em_max_iterations": max_iterations,
        "optimiser_success": best.optimiser_success,
        "optimiser_message": best.optimiser_message,
        "starts": [r.penalised for r in runs],
        "covariance": how,
        "hessian_condition": float(np.linalg.cond(hessian)),
    }
    return Fit(
        layout,
        theta,
        cov,
        mean,
        sd,
        data_share,
        best.class_share,
        best.debtor_w,
        best.log_lik,
        data.invoices,
        best.iterations,
        own,
        convergence=convergence,
        warnings=found,
        currency=data.currency,
        as_of=data.as_of,
        fingerprint=data.fingerprint,
    )


def _inverse(hessian: np.ndarray, found: list[str]) -> tuple[np.ndarray, str]:
    """The inverse, or the pseudo-inverse with a warning when the Hessian is (nearly) singular."""
    condition = np.linalg.cond(hessian)
    if np.isfinite(condition) and condition < defaults.HESSIAN_CONDITION_LIMIT:
        try:
            return np.linalg.inv(hessian), "inverse"
        except np.linalg.LinAlgError:
            pass
    found.append(
        f"the Hessian is singular (condition number {condition:.3g}): some parameters are not "
        "identified; their uncertainty comes from a pseudo-inverse and is not to be trusted"
    )
    return np.linalg.pinv(hessian, hermitian=True), "pseudo-inverse"


def _debtor_scores(
    data: Data, theta: np.ndarray, layout: Layout, debtor_w: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    r"""(Σ_j g_j g_jᵀ, the missing information Σ_j Cov_k(s_jk)) over debtors j: s_jk the
    debtor's complete-data score were it of class k, g_j = Σ_k w_jk s_jk its score (Fisher's
    identity), w_jk its class posterior.

    With them the covariance is the debtor-clustered sandwich

    .. math:: V = (H - M)^{-1} \left(\sum_j g_j g_j^\top + P\right) (H - M)^{-1}

    (H the penalised complete-data information, M the missing information, so H − M is the
    observed information by Louis' identity; P the prior precision, so a parameter that rests
    on its prior keeps the prior's variance). Invoices of one debtor are not independent
    evidence: a debtor's many late invoices say less than as many debtors' would. And not
    knowing a debtor's class costs information: without M the class shifts and everything
    that trades off against them (the level of each kind of invoice) came out too sure.
    """
    hazard = 1.0 / (1.0 + np.exp(-cell_eta(layout, theta, data.cells)))  # cells × classes
    exposure = (data.survived + data.events).tocsr()
    events = data.events.tocsr()
    owner = sparse.csr_array(
        (np.ones(data.invoices), (data.debtor, np.arange(data.invoices))),
        shape=(data.n_debtors, data.invoices),
    )
    observed = owner @ events  # debtors × cells: the same in every class
    # Per class: the debtors' residuals by cell (debtors × cells), then one product with
    # that class's design: s_jk = Σ_i (e_ic − n_ic h_kc) x_kc over debtor j's invoices i.
    by_debtor = np.zeros((data.n_debtors, layout.size))
    within = np.zeros((layout.size, layout.size))
    for k in range(layout.classes):
        expected = sparse.csr_array(
            (exposure.data * hazard[exposure.indices, k], exposure.indices, exposure.indptr),
            shape=exposure.shape,
        )
        x = design(layout, np.full(len(data.cells), k), data.cells)
        score = np.asarray((observed - owner @ expected) @ x)
        w = debtor_w[:, k][:, None]
        by_debtor += w * score
        if layout.classes > 1:
            within += score.T @ (w * score)
    outer = by_debtor.T @ by_debtor
    missing = within - outer if layout.classes > 1 else np.zeros_like(outer)
    return outer, (missing + missing.T) / 2


def _initial_posterior(data: Data, classes: int, start: int = 0) -> np.ndarray:
    """A start that cannot be a saddle: debtors grouped by how late they pay.

    Each debtor's lateness (mean log days past due over its invoices; unpaid ones count as
    at least their observed days, and twice as late) is clustered in one dimension (Lloyd's
    k-means, centres starting at evenly spaced quantiles, jittered for `start` > 0). Groups
    then follow the data's own gaps: a small group that never pays gets a class of its own
    instead of being merged into an equal-sized slice of the late payers, no two classes
    start identical, and nobody needs to be 60 days late for the split to exist.
    """
    if classes == 1:
        return np.ones((data.n_debtors, 1))
    s = data.segments
    end = np.zeros(data.invoices, dtype=np.int64)
    np.maximum.at(end, s.invoice, s.start + s.length - 1)
    paid = np.zeros(data.invoices, dtype=bool)
    paid[s.invoice[s.event]] = True
    counted = end >= 0  # observed past its due date
    lateness = np.log1p(np.clip(end, 0, None)) + np.where(paid, 0.0, np.log(2.0))
    total = np.bincount(data.debtor[counted], lateness[counted], minlength=data.n_debtors)
    count = np.bincount(data.debtor[counted], minlength=data.n_debtors)
    score = np.divide(total, count, out=np.zeros(data.n_debtors), where=count > 0)
    known = score[count > 0] if (count > 0).any() else score
    score[count == 0] = np.median(known)
    rng = np.random.default_rng(start)
    levels = (np.arange(classes) + 0.5) / classes
    if start > 0:
        levels = np.sort(np.clip(levels + rng.uniform(-0.4, 0.4, classes) / classes, 0.0, 1.0))
    centres = np.quantile(known, levels)
    group = np.zeros(data.n_debtors, dtype=np.int64)
    for _ in range(50):
        group = np.abs(score[:, None] - centres[None, :]).argmin(axis=1)
        sizes = np.bincount(group, minlength=classes)
        moved = np.bincount(group, score, minlength=classes) / np.maximum(sizes, 1)
        moved = np.where(sizes > 0, moved, centres)
        if np.allclose(moved, centres):
            break
        centres = moved
    # A group k-means left empty (ties, a history with too few distinct scores) takes the
    # debtors at its quantile, so every class starts with members.
    rank = np.empty(data.n_debtors, dtype=np.int64)
    rank[np.lexsort((rng.random(data.n_debtors), score))] = np.arange(data.n_debtors)
    for k in np.flatnonzero(np.bincount(group, minlength=classes) == 0):
        slot = rank * classes // max(data.n_debtors, 1) == k
        group[slot] = k
    w = np.full((data.n_debtors, classes), 0.4 / (classes - 1))
    w[np.arange(data.n_debtors), group] = 0.6
    return w


def _class_contacts_of(model: Fit) -> np.ndarray:
    """Each class's own contact deviations (classes × CLASS_CONTACT_NAMES); zeros without."""
    layout = model.layout
    if not layout.has_class_contacts:
        return np.zeros((layout.classes, len(CLASS_CONTACT_NAMES)))
    return np.asarray(model.params[layout.class_contact]).reshape(layout.classes, -1)


def split_starts(data: Data, model: Fit, count: int = 2) -> list[np.ndarray]:
    """Starts for one class more than `model` has: one of its classes (the slowest payers
    first) split into a faster and a much slower half, posteriors from one E-step.

    Rank-based starts cannot isolate a small group inside the slowest slice (those who
    never pay among those who pay late); a split of the fitted slow class can, and EM
    then decides whether the two halves stay apart.
    """
    layout = Layout(model.layout.classes + 1, model.layout.class_contacts)
    shifts = np.r_[0.0, model.params[model.layout.delta]]
    starts = []
    for j in np.argsort(shifts, kind="stable")[:count]:
        new = np.r_[shifts, shifts[j] - defaults.SPLIT_DISTANCE]
        new[j] += defaults.SPLIT_DISTANCE / 3
        theta = np.zeros(layout.size)
        theta[: model.layout.delta.start] = model.params[: model.layout.delta.start]
        theta[layout.alpha] += new[0]
        theta[layout.delta] = new[1:] - new[0]
        if layout.has_class_contacts:
            own = _class_contacts_of(model)
            theta[layout.class_contact] = np.r_[own, own[j : j + 1]].ravel()
        share = np.c_[model.class_share, model.class_share[:, j] / 2]
        share[:, j] /= 2
        w, _, _ = _e_step(data, theta, layout, share)
        starts.append(w)
    return starts


def _held_out_scores(model: Fit, train: Data, test: Data) -> np.ndarray:
    """Per debtor with invoices in `test`: log p(its test invoices | its train invoices)."""
    prior_w = np.log(np.maximum(model.class_share[train.b2c_debtor.astype(int)], 1e-12))
    past = _debtor_log_lik(train, _segment_log_lik(train, model.params, model.layout))
    future = _debtor_log_lik(test, _segment_log_lik(test, model.params, model.layout))
    score = logsumexp(prior_w + past + future, axis=1) - logsumexp(prior_w + past, axis=1)
    present = np.bincount(test.debtor, minlength=test.n_debtors) > 0
    return np.asarray(score[present])


def choose_classes(
    history: History,
    as_of: int | None = None,
    invoices: np.ndarray | None = None,
    candidates: tuple[int, ...] | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    class_contacts: bool | None = None,
) -> tuple[dict[str, Any], Fit | None, dict[int, Fit]]:
    """The number of latent classes by leave-future-out held-out likelihood.

    Each candidate is fitted on the history as known at a cut date (invoices issued before
    it) and scored on the invoices issued after it: every debtor's future invoices predicted
    from its own past through its class posterior, so a class that only memorises the past
    earns nothing. The fewest classes within SELECTION_STANDARD_ERRORS of the best score
    win. Returns the report, the chosen candidate's fit (a start for the full fit) and
    every candidate's fit by its number of classes (the model-form variants).
    """
    as_of = history.as_of if as_of is None else as_of
    idx = np.arange(history.size) if invoices is None else np.asarray(invoices)
    candidates = candidates or tuple(range(1, defaults.MAX_CLASSES + 1))
    sampled = idx
    if len(idx) > defaults.SELECTION_MAX_INVOICES:
        rng = np.random.default_rng(seed)
        debtors = np.unique(history.debtor[idx])
        order = rng.permutation(debtors)
        per = np.bincount(history.debtor[idx], minlength=len(history.debtor_ids))[order]
        keep = order[: int(np.searchsorted(np.cumsum(per), defaults.SELECTION_MAX_INVOICES)) + 1]
        chosen_debtor = np.zeros(len(history.debtor_ids), dtype=bool)
        chosen_debtor[keep] = True
        sampled = idx[chosen_debtor[history.debtor[idx]]]
    issue = history.issue[sampled]
    cut = int(np.quantile(issue, 1.0 - defaults.HOLDOUT_SHARE))
    train = sampled[issue < cut]
    test = sampled[issue >= cut]
    report: dict[str, Any] = {
        "rule": (
            "leave-future-out: fitted on invoices issued before the cut as known then, scored "
            "on the log-likelihood of the invoices issued from the cut on, each debtor's "
            "future given its past; the fewest classes within "
            f"{defaults.SELECTION_STANDARD_ERRORS:g} standard error(s) of the best"
        ),
        "cut": int(cut),
        "train_invoices": len(train),
        "test_invoices": len(test),
        "sampled_invoices": len(sampled),
        "candidates": [],
    }
    if len(train) < 500 or len(test) < 200 or len(np.unique(history.debtor[test])) < 50:
        report["chosen"] = 1
        report["reason"] = "too few invoices on one side of the cut to compare classes"
        return report, None, {}
    train_data = prepare(history, as_of=cut - 1, invoices=train)
    test_data = prepare(history, as_of=as_of, invoices=test)
    scores: dict[int, np.ndarray] = {}
    fits: dict[int, Fit] = {}
    for k in sorted(candidates):
        if progress is not None:
            progress(f"choosing classes: fitting {k} on the history before the cut")
        smaller = fits.get(k - 1)
        fits[k] = fit(
            train_data,
            k,
            starts=defaults.SELECTION_RANK_STARTS,
            initial=split_starts(train_data, smaller) if smaller is not None else None,
            seed=seed,
            covariance=False,
            class_contacts=class_contacts,
        )
        scores[k] = _held_out_scores(fits[k], train_data, test_data)
    totals = {k: float(v.sum()) for k, v in scores.items()}
    best = max(totals, key=lambda k: totals[k])
    chosen = best
    for k in sorted(candidates):
        diff = scores[best] - scores[k]
        se = float(np.sqrt(len(diff)) * diff.std(ddof=1)) if len(diff) > 1 else 0.0
        report["candidates"].append(
            {
                "classes": k,
                "held_out_log_lik": totals[k],
                "per_test_invoice": totals[k] / len(test),
                "behind_best": totals[best] - totals[k],
                "standard_error": se,
                "train_log_lik": fits[k].log_lik,
                "em_iterations": fits[k].iterations,
                "em_converged": bool(fits[k].convergence["em_converged"]),
                "class_share_b2b": fits[k].class_share[0].tolist(),
                "class_share_b2c": fits[k].class_share[1].tolist(),
                "class_shift": [0.0, *fits[k].params[fits[k].layout.delta].tolist()],
            }
        )
        if k < chosen and totals[best] - totals[k] <= defaults.SELECTION_STANDARD_ERRORS * se:
            chosen = k
    report["best"] = best
    report["chosen"] = chosen
    report["at_boundary"] = chosen == max(candidates)
    return report, fits[chosen], fits


def posterior_start(data: Data, model: Fit | Variant) -> np.ndarray:
    """Debtor posteriors on `data` under another fit's parameters (a warm start)."""
    w, _, _ = _e_step(data, model.params, model.layout, model.class_share)
    return w


def own_evidence(data: Data, model: Fit) -> np.ndarray:
    """Each invoice's own log-likelihood per class (history invoices × classes)."""
    own = np.zeros((data.history_size, model.layout.classes))
    own[data.index] = _segment_log_lik(data, model.params, model.layout)
    return own


def fit_history(
    history: History,
    as_of: int | None = None,
    invoices: np.ndarray | None = None,
    classes: int | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    class_contacts: bool | None = None,
    prior_override: Mapping[str, tuple[float, float]] | None = None,
) -> Fit:
    """Fit the model to a history, choosing the number of classes unless it is given.

    `class_contacts`: whether classes have their own contact effects (default
    `defaults.CLASS_CONTACT_EFFECTS`). `prior_override`: pooled priors by parameter name
    (see `fit`); a parameter the history cannot identify then rests on them, and the
    model's warnings name each one."""
    selection = None
    candidates: dict[int, Fit] = {}
    initial: list[np.ndarray] = []
    if classes is None:
        selection, chosen_fit, candidates = choose_classes(
            history, as_of, invoices, seed=seed, progress=progress, class_contacts=class_contacts
        )
        classes = int(selection["chosen"])
    data = prepare(history, as_of, invoices)
    if selection is not None and chosen_fit is not None and classes > 1:
        initial.append(posterior_start(data, chosen_fit))

    def report(i: int, ll: float) -> None:
        if progress is not None:
            progress(f"fitting {classes} classes: EM iteration {i}, log-likelihood {ll:,.1f}")

    model = fit(
        data,
        classes,
        progress=report,
        starts=0 if initial else defaults.EM_STARTS,
        initial=initial,
        class_contacts=class_contacts,
        prior_override=prior_override,
    )
    model.selection = selection
    if len(candidates) > 1:
        model.variants = [
            Variant(c.layout, c.params, c.class_share, posterior_start(data, c))
            for _, c in sorted(candidates.items())
        ]
    pooled = [
        name
        for name, is_prior in zip(model.names, model.is_prior(), strict=True)
        if is_prior and prior_override and name in prior_override
    ]
    if pooled:
        model.warnings.append(
            f"the history cannot identify {', '.join(pooled)}: the agency's pooled estimate "
            "across its clients stands in (a prior, not a finding of this history)"
        )
    if selection is not None and selection.get("at_boundary"):
        model.warnings.append(
            f"the held-out likelihood still favours the most classes tried ({classes}): the "
            "debtors differ more than the model's classes can say"
        )
    return model
