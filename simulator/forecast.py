"""Forecasts (formats §3): a cohort replayed under candidate policies, with 90 % intervals.

Means come from the fitted parameters, intervals from parameter draws of the Laplace
approximation, paired across candidates so the deltas have intervals of their own.
Warnings name every place where the answer rests on a prior or an extrapolation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from simulator.exposure import Contacts
from simulator.fit import Fit, Variant, recorded_contacts, static_codes
from simulator.history import NOT_SETTLED, History, day_date
from simulator.logging_policy import (
    LAST_DAY,
    N_KINDS,
    LoggingPolicy,
    from_history,
    kind_of,
    stratum_of,
)
from simulator.model import BUMP_DAYS, CHANNELS, FIRST_DAY, N_WINDOWS
from simulator.policy import Policy, assign
from simulator.replay import Paths, Rows, first_day, policy_fees, policy_schedule, run
from simulator.rules import SWEDEN, Rules, reference_rate_bp

ACTUAL = "actual"
RECOVERY_DAYS = (0, 30, 60, 90, 120, 180)
CASH_FROM = -30
# What a contact costs, minor units (SEK öre); override with `channel_costs`.
DEFAULT_CHANNEL_COSTS = {"email": 50, "sms": 100, "letter": 1_200, "phone": 6_000}
# Drawn schedules per group of like invoices when replaying the history's own routine:
# more makes `actual` smoother and slower (each is a row of the replay).
# A candidate that stops contacting is warned about when at least this share of the
# history's invoices still unpaid BUMP_DAYS after its last step were contacted after that
# step (among at least this many such invoices): the history then never showed how
# invoices pay without further contacts.
STOPS_EARLY_SHARE = 0.95
STOPS_EARLY_MIN_INVOICES = 50
SCHEDULES_PER_GROUP = 4


@dataclass
class Cohort:
    invoices: np.ndarray  # indexes into the history
    due_from: int
    due_to: int


@dataclass
class Options:
    horizon: int = 180
    draws: int = 100
    seed: int = 0
    channel_costs: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_CHANNEL_COSTS))
    rules: Rules = SWEDEN
    # `calibration` of a rolling backtest of the same history (`simulator.backtest`): the
    # model-form error it measured by horizon band widens the recovery intervals.
    calibration: dict[str, Any] | None = None


def default_cohort(
    history: History, due_from: int | None = None, due_to: int | None = None
) -> Cohort:
    """Invoices due in the year up to the as-of date, unless told otherwise."""
    due_to = history.as_of if due_to is None else due_to
    due_from = due_to - 364 if due_from is None else due_from
    chosen = np.flatnonzero((history.due >= due_from) & (history.due <= due_to))
    return Cohort(chosen, due_from, due_to)


@dataclass
class _Outcome:
    settled: np.ndarray  # draws × days, amount
    contacts: dict[str, np.ndarray]  # channel -> draws
    escalation_count: np.ndarray
    escalation_amount: np.ndarray
    fee_income: np.ndarray
    interest_income: np.ndarray
    channel_cost: np.ndarray


# A cohort grouped into a policy's rows: static code, first day, amount and count (draws ×
# rows × classes), each row's first invoice, and the amounts' squares (or None).
_Grouped = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]


class _Groups:
    """What every policy of one forecast shares: the static codes of the history and, per set
    of invoices, their rows with amounts and counts by class and draw. A policy's rows differ
    from another's only in the schedule, and building them (a bincount per parameter draw)
    cost more than replaying them."""

    def __init__(self, history: History, codes: np.ndarray | None = None) -> None:
        self.codes = static_codes(history) if codes is None else codes
        self.plain: dict[bytes, _Grouped] = {}

    def for_another_model(self, history: History) -> _Groups:
        """The same codes, none of the rows: those hold one model's class posteriors."""
        return _Groups(history, self.codes)

    def key(self, idx: np.ndarray) -> bytes:
        return hashlib.blake2b(np.ascontiguousarray(idx).tobytes(), digest_size=16).digest()


def _group(
    history: History,
    fit: Fit | Variant,
    idx: np.ndarray,
    policy: Policy | LoggingPolicy | None,
    class_draws: np.ndarray | None,
    seed: int = 0,
    amount_sq: bool = False,
    groups: _Groups | None = None,
) -> Rows:
    """Invoices under one policy collapse to one row per (static code, first day at risk).

    With `class_draws` (draws × debtors: a class per debtor per draw; draw 0 unused) every
    parameter draw also re-draws which debtors struggle, so the interval covers not knowing
    each debtor's class as well as not knowing the parameters.

    Under the history's own routine (a `LoggingPolicy`) the schedule is random: invoices
    also split by due month (the routine's stratum), and each group is replayed under
    `SCHEDULES_PER_GROUP` drawn schedules, each carrying an equal share of the group. The
    classes, amounts and first days are exactly those a policy gets, so the routine and any
    policy agree to rounding on every day before either makes a contact.
    """
    logged = isinstance(policy, LoggingPolicy)
    cached = None if groups is None or logged else groups.plain.get(groups.key(idx))
    if cached is not None:
        return _policy_rows(history, policy, class_draws, *cached)
    codes = (static_codes(history) if groups is None else groups.codes)[idx]
    start = first_day(history.issue[idx], history.due[idx])
    key = codes * 1000 + (start + 500)
    if logged:
        month = policy.month_index(history.due[idx])  # type: ignore[union-attr]
        key = key * 1000 + month
    unique, inverse = np.unique(key, return_inverse=True)
    if logged:
        group_month = unique % 1000
        unique = unique // 1000
    weights = fit.debtor_posterior[history.debtor[idx]]
    classes = weights.shape[1]
    draws = 1 if class_draws is None else len(class_draws)
    amount = np.zeros((draws, len(unique), classes))
    count = np.zeros((draws, len(unique), classes))
    for k in range(classes):
        amount[0, :, k] = np.bincount(
            inverse, weights=weights[:, k] * history.amount[idx], minlength=len(unique)
        )
        count[0, :, k] = np.bincount(inverse, weights=weights[:, k], minlength=len(unique))
    if class_draws is not None:
        slots = len(unique) * classes
        debtors = history.debtor[idx]
        money = history.amount[idx].astype(np.float64)
        for d in range(1, draws):  # one bincount per draw over (row, drawn class)
            key = inverse * classes + class_draws[d][debtors]
            amount[d] = np.bincount(key, weights=money, minlength=slots).reshape(
                len(unique), classes
            )
            count[d] = np.bincount(key, minlength=slots).reshape(len(unique), classes)
    first = np.zeros(len(unique), dtype=np.int64)
    first[inverse] = np.arange(len(idx))
    rep = idx[first]
    static, row_start = unique // 1000, unique % 1000 - 500
    square = (
        np.bincount(inverse, weights=history.amount[idx].astype(np.float64) ** 2)
        if amount_sq
        else None
    )
    if not logged:
        if groups is not None:
            groups.plain[groups.key(idx)] = (static, row_start, amount, count, rep, square)
        return _policy_rows(
            history, policy, class_draws, static, row_start, amount, count, rep, square
        )
    assert isinstance(policy, LoggingPolicy)
    copies = SCHEDULES_PER_GROUP
    rows = np.repeat(np.arange(len(unique)), copies)
    rng = np.random.default_rng(seed + 7)
    # stratified uniforms for the first contact: the copies of a group spread evenly over it
    u_first = (np.tile(np.arange(copies), len(unique)) + rng.random(len(rows))) / copies
    schedule = policy.draw(
        group_month[rows],
        stratum_of(history.b2c[rep], history.fee_agreed[rep], history.disputed[rep])[rows],
        row_start[rows],
        LAST_DAY,
        rng,
        u_first,
    )
    share = 1.0 / copies
    # Rows whose static code, first day and drawn schedule coincide are one row: a routine
    # that is close to a calendar draws the same few schedules again and again.
    merged, inverse = _same_schedules(static[rows], row_start[rows], schedule)
    first = np.zeros(len(merged), dtype=np.int64)
    first[inverse] = np.arange(len(rows))
    position = np.full(len(rows), -1)
    position[first] = np.arange(len(first))
    keep = position[schedule.invoice] >= 0
    schedule = schedule.select(keep)
    schedule = Contacts(
        position[schedule.invoice], schedule.day, schedule.channel, schedule.notice, schedule.fee
    )
    fees = policy.fees(schedule)
    gather = sparse.csr_array(
        (np.full(len(rows), share), (inverse, np.arange(len(rows)))), shape=(len(merged), len(rows))
    )

    def summed(values: np.ndarray) -> np.ndarray:
        """values (draws × groups × classes) of each row's group, summed per merged row."""
        per_row = values[:, rows]  # draws × rows × classes
        d, r, k = per_row.shape
        flat = gather @ per_row.transpose(1, 0, 2).reshape(r, d * k)
        return np.asarray(flat).reshape(len(merged), d, k).transpose(1, 0, 2)

    amounts, counts = summed(amount), summed(count)
    squares = gather @ square[rows] if square is not None else None
    static_m, start_m = static[rows][first], row_start[rows][first]
    if class_draws is None:
        return Rows(static_m, start_m, amounts[0], counts[0], schedule, fees, squares)
    return Rows(static_m, start_m, amounts, counts, schedule, fees, squares)


def _same_schedules(
    static: np.ndarray, start: np.ndarray, schedule: Contacts
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (static code, first day, schedule) rows and each row's index among them."""
    n = len(static)
    order = np.lexsort((schedule.day, schedule.invoice))
    invoice = schedule.invoice[order]
    rank = np.arange(len(invoice)) - np.searchsorted(invoice, invoice)
    width = int(rank.max()) + 1 if len(rank) else 0
    kind = kind_of(schedule.channel, schedule.notice, schedule.fee)[order]
    signature = np.zeros((n, width + 2), dtype=np.int64)
    signature[:, 0], signature[:, 1] = static, start
    signature[invoice, 2 + rank] = (schedule.day[order] - FIRST_DAY + 1) * N_KINDS + kind + 1
    unique, inverse = np.unique(signature, axis=0, return_inverse=True)
    return unique, inverse.ravel()


def _run_banded(
    params: np.ndarray, fit: Fit | Variant, rows: Rows, spread_rows: Rows, options: Options
) -> Paths:
    """`run` for the many rows of drawn schedules: every row with the estimate, and how the
    parameter and class draws move the settled amount from `spread_rows` (`_spread_rows`:
    the cohort grouped as for a policy, one drawn schedule per group). A policy has a row
    per (static code, first day); the routine has one per (static code, first day, due
    month, drawn schedule), so running every draw on every row would make `actual` tens of
    times slower than a policy. The spread rows hold the whole cohort, so nothing is scaled
    up: a random subsample of rows, scaled to the cohort, overstated the interval by 15-60 %
    (its own class-draw noise, multiplied by the scale)."""
    if len(params) == 1:
        return run(params, fit.layout, rows, options.horizon)
    point_rows = Rows(
        rows.static,
        rows.start,
        rows.amount[:1] if rows.amount.ndim == 3 else rows.amount,
        rows.count[:1] if rows.count.ndim == 3 else rows.count,
        rows.contacts,
        rows.contact_fee,
    )
    point = run(params[:1], fit.layout, point_rows, options.horizon)
    spread = run(params, fit.layout, spread_rows, options.horizon)
    assert point.contacts_made is not None and point.fee_income is not None
    draws = len(params)
    return Paths(
        point.days,
        point.settled_amount + (spread.settled_amount - spread.settled_amount[:1]),
        {},
        {},
        contacts_made=np.repeat(point.contacts_made, draws, axis=0),
        fee_income=np.repeat(point.fee_income, draws),
    )


def _spread_rows(
    history: History,
    fit: Fit | Variant,
    idx: np.ndarray,
    routine: LoggingPolicy,
    class_draws: np.ndarray | None,
    seed: int,
    groups: _Groups,
) -> Rows:
    """The cohort in a policy's rows (static code, first day), each under one schedule drawn
    from the routine for its first invoice's due month: as many rows as a policy has, for
    measuring how the draws move the routine's replay."""
    _group(history, fit, idx, None, class_draws, groups=groups)  # fills the shared grouping
    static, row_start, amount, count, rep, _ = groups.plain[groups.key(idx)]
    rng = np.random.default_rng(seed + 11)
    schedule = routine.draw(
        routine.month_index(history.due[rep]),
        stratum_of(history.b2c[rep], history.fee_agreed[rep], history.disputed[rep]),
        row_start,
        LAST_DAY,
        rng,
        rng.random(len(rep)),
    )
    if class_draws is None:
        amount, count = amount[0], count[0]
    return Rows(static, row_start, amount, count, schedule, routine.fees(schedule))


def _policy_rows(
    history: History,
    policy: Policy | LoggingPolicy | None,
    class_draws: np.ndarray | None,
    static: np.ndarray,
    row_start: np.ndarray,
    amount: np.ndarray,
    count: np.ndarray,
    rep: np.ndarray,
    square: np.ndarray | None,
) -> Rows:
    """A policy's rows: the grouped invoices with the policy's schedule for each."""
    assert not isinstance(policy, LoggingPolicy)
    schedule = policy_schedule(
        policy, len(static), history.fee_agreed[rep], history.disputed[rep], ~history.b2c[rep]
    )
    fees = policy_fees(policy, schedule)
    if class_draws is None:
        return Rows(static, row_start, amount[0], count[0], schedule, fees, square)
    return Rows(static, row_start, amount, count, schedule, fees, square)


def draw_classes(fit: Fit, draws: int, seed: int) -> np.ndarray:
    """A class for every debtor in every draw, from the fitted posterior (draws × debtors)."""
    rng = np.random.default_rng(seed + 1)
    cumulative = np.cumsum(fit.debtor_posterior, axis=1)
    u = rng.random((draws, len(cumulative)))
    # the count of cumulative shares below u, over the first classes - 1 columns only (the
    # last is 1 up to rounding: counting it would need a clip); one pass per class, not a
    # draws × debtors × classes array summed over its short last axis (5× slower at 1 M)
    klass = np.zeros(u.shape, dtype=np.int64)
    for k in range(fit.layout.classes - 1):
        klass += u > cumulative[:, k]
    return klass


def _interest_rate_bp(policy: Policy | None, as_of: str, rules: Rules) -> int:
    if policy is None or policy.interest_mode == "none":
        return 0
    if policy.interest_mode == "contract":
        return policy.interest_annual_rate_bp or 0
    reference = reference_rate_bp(as_of)
    return (reference or 0) + rules.statutory_margin_bp


def _measure(
    paths: Paths, rows: Rows, policy: Policy | None, horizon: int, options: Options, rate_bp: int
) -> _Outcome:
    draws = paths.settled_amount.shape[0]
    assert paths.contacts_made is not None and paths.fee_income is not None
    contacts = {c: paths.contacts_made[:, i] for i, c in enumerate(CHANNELS)}
    total = rows.amount.sum() / (draws if rows.amount.ndim == 3 else 1)
    escalation_count = np.zeros(draws)
    escalation_amount = np.zeros(draws)
    if (
        policy is not None
        and policy.escalate_after_days is not None
        and policy.escalate_after_days <= horizon
    ):
        day = policy.escalate_after_days
        escalation_count = paths.unpaid_count_at[day]
        escalation_amount = total - paths.settled_amount[:, day - 1 - paths.days[0]]
    settled_by_day = np.diff(paths.settled_amount, axis=1, prepend=0.0)
    late = np.clip(paths.days, 0, None)
    interest = (settled_by_day * late).sum(axis=1) * rate_bp / 10_000 / 365
    cost = sum(contacts[c] * options.channel_costs.get(c, 0) for c in CHANNELS)
    return _Outcome(
        paths.settled_amount,
        contacts,
        escalation_count,
        escalation_amount,
        paths.fee_income,
        interest,
        np.asarray(cost),
    )


def _watch(policies: list[Policy], horizon: int) -> tuple[int, ...]:
    days = {horizon + 1}
    for policy in policies:
        days |= {s.day for s in policy.steps if s.day <= horizon}
        if policy.escalate_after_days is not None and policy.escalate_after_days <= horizon:
            days.add(policy.escalate_after_days)
    return tuple(sorted(days))


def _simulate_candidate(
    history: History,
    fit: Fit | Variant,
    cohort: Cohort,
    candidate: list[Policy] | str,
    params: np.ndarray,
    options: Options,
    class_draws: np.ndarray | None = None,
    logging: LoggingPolicy | None = None,
    groups: _Groups | None = None,
) -> tuple[_Outcome, float]:
    idx = cohort.invoices
    as_of = day_date(history.as_of).isoformat()
    total = float(history.amount[idx].sum())
    if candidate == ACTUAL:
        # the history's own routine, estimated and replayed like any policy
        routine = logging if logging is not None else from_history(history)
        groups = groups or _Groups(history)
        # the point replay needs no class draws: those move only the spread rows
        rows = _group(history, fit, idx, routine, None, options.seed, groups=groups)
        spread = _spread_rows(history, fit, idx, routine, class_draws, options.seed, groups)
        return _measure(
            _run_banded(params, fit, rows, spread, options),
            rows,
            None,
            options.horizon,
            options,
            0,
        ), total
    assert not isinstance(candidate, str)
    chosen = assign(candidate, np.where(history.b2c[idx], "b2c", "b2b"), history.amount[idx])
    parts: list[_Outcome] = []
    for p in range(-1, len(candidate)):
        members = idx[chosen == p]
        if not len(members):
            continue
        policy = candidate[p] if p >= 0 else None
        rows = _group(history, fit, members, policy, class_draws, groups=groups)
        paths = run(
            params,
            fit.layout,
            rows,
            options.horizon,
            _watch([policy] if policy else [], options.horizon),
        )
        parts.append(
            _measure(
                paths,
                rows,
                policy,
                options.horizon,
                options,
                _interest_rate_bp(policy, as_of, options.rules),
            )
        )

    def total_of(get: Any) -> np.ndarray:
        return np.sum(
            [
                np.broadcast_to(get(o), (len(params),)) if np.ndim(get(o)) <= 1 else get(o)
                for o in parts
            ],
            axis=0,
        )

    combined = _Outcome(
        settled=total_of(lambda o: o.settled),
        contacts={c: total_of(lambda o, c=c: o.contacts[c]) for c in CHANNELS},
        escalation_count=total_of(lambda o: o.escalation_count),
        escalation_amount=total_of(lambda o: o.escalation_amount),
        fee_income=total_of(lambda o: o.fee_income),
        interest_income=total_of(lambda o: o.interest_income),
        channel_cost=total_of(lambda o: o.channel_cost),
    )
    return combined, total


def _band(values: np.ndarray, excess: float = 0.0) -> tuple[float, float]:
    """5th and 95th percentiles of the draws; widened, when a backtest measured a model-form
    error of sd `excess` (a share) at this horizon, by that error in quadrature."""
    low, high = np.percentile(values, [5, 95])
    if excess > 0:
        point = values[0]
        low = point - np.hypot(point - low, Z90 * excess)
        high = point + np.hypot(high - point, Z90 * excess)
    return float(low), float(high)


Z90 = 1.6448536269514722  # two-sided 90 % normal quantile


def excess_by_day(calibration: dict[str, Any] | None, days: range) -> dict[int, float]:
    """The backtests' model-form sd (a share) for each day: the band holding the day, and
    past the last band the backtests measured (their horizon), the largest one measured."""
    if not calibration:
        return dict.fromkeys(days, 0.0)
    bands = calibration["bands"]
    starts = np.array([b["from_day"] for b in bands])
    values = np.array([b["excess_sd_pp"] for b in bands]) / 100
    measured = np.array([b.get("points", 1) > 0 for b in bands])
    largest = float(values[measured].max()) if measured.any() else 0.0
    out = {}
    for d in days:
        k = int(np.searchsorted(starts, d, side="right") - 1)
        out[d] = float(values[k]) if k >= 0 and measured[k] else largest
    return out


def forecast(
    history: History,
    fit: Fit,
    candidates: dict[str, list[Policy] | str],
    cohort: Cohort | None = None,
    options: Options | None = None,
    logging: LoggingPolicy | None = None,
) -> dict[str, Any]:
    """The forecast JSON of formats §3 for these candidates (name → policies or "actual").

    "actual" is the history's own routine (`logging`, estimated from the history when not
    given) replayed by g-computation like any policy.
    """
    options = options or Options()
    cohort = cohort or default_cohort(history)
    if not len(cohort.invoices):
        raise ValueError("the cohort holds no invoices")
    params = fit.draws(max(options.draws, 2), options.seed)
    class_draws = draw_classes(fit, len(params), options.seed) if fit.layout.classes > 1 else None
    if logging is None and ACTUAL in candidates.values():
        logging = from_history(history)
    days = np.arange(-60, options.horizon + 1)
    excess = excess_by_day(options.calibration, range(CASH_FROM, options.horizon + 1))
    recovery_days = [d for d in RECOVERY_DAYS if d <= options.horizon]
    results: dict[str, Any] = {}
    shares: dict[str, np.ndarray] = {}
    dbt: dict[str, np.ndarray] = {}
    groups = _Groups(history)
    form = (
        _model_form(history, fit, candidates, cohort, options, logging, groups)
        if options.calibration is not None
        else None
    )
    for name, candidate in candidates.items():
        outcome, total = _simulate_candidate(
            history, fit, cohort, candidate, params, options, class_draws, logging, groups
        )
        share = outcome.settled / total  # draws × days
        shares[name] = share
        within = np.diff(outcome.settled, axis=1, prepend=0.0)
        late = np.clip(days, 0, None)
        dbt[name] = (within * late).sum(axis=1) / np.maximum(within.sum(axis=1), 1e-12)
        column = {d: int(np.searchsorted(days, d)) for d in range(CASH_FROM, options.horizon + 1)}
        # the backtests' model-form error and the variants' disagreement, in quadrature
        wider = {
            d: float(np.hypot(excess[d], 0.0 if form is None else form.level[name][column[d]]))
            for d in column
        }
        results[name] = {
            "recovery": {str(d): float(share[0, column[d]]) for d in recovery_days},
            "recovery_interval": {
                str(d): list(_band(share[:, column[d]], wider[d])) for d in recovery_days if d > 0
            },
            "cash_curve": [
                [d, float(share[0, column[d]]), *_band(share[:, column[d]], wider[d])]
                for d in range(CASH_FROM, options.horizon + 1)
            ],
            "days_beyond_terms": float(dbt[name][0]),
            "actions": {c: float(outcome.contacts[c][0]) for c in CHANNELS},
            "escalations": {
                "count": float(np.atleast_1d(outcome.escalation_count)[0]),
                "amount": round(float(np.atleast_1d(outcome.escalation_amount)[0])),
            },
            "fee_income": round(float(np.atleast_1d(outcome.fee_income)[0])),
            "interest_income": round(float(np.atleast_1d(outcome.interest_income)[0])),
            "channel_cost": round(float(np.atleast_1d(outcome.channel_cost)[0])),
        }
    names = list(candidates)
    deltas: dict[str, Any] = {}
    for name in names[1:]:
        diff = shares[name] - shares[names[0]]
        deltas[name] = {
            "recovery": {str(d): float(diff[0, np.searchsorted(days, d)]) for d in recovery_days},
            "recovery_interval": {
                str(d): list(
                    _band(
                        diff[:, np.searchsorted(days, d)],
                        0.0 if form is None else form.delta[name][np.searchsorted(days, d)],
                    )
                )
                for d in recovery_days
                if d > 0
            },
            "days_beyond_terms": float(dbt[name][0] - dbt[names[0]][0]),
        }
    idx = cohort.invoices
    answer: dict[str, Any] = {
        "as_of": day_date(history.as_of).isoformat(),
        "horizon_days": options.horizon,
        "cohort": {
            "invoices": len(idx),
            "amount": int(history.amount[idx].sum()),
            "currency": history.currency,
            "due_from": day_date(cohort.due_from).isoformat(),
            "due_to": day_date(cohort.due_to).isoformat(),
        },
        "results": results,
        "deltas": deltas,
        "warnings": warnings(history, fit, candidates, options),
    }
    if options.calibration:
        answer["interval_calibration"] = options.calibration
    if form is not None:
        answer["warnings"].append(
            "intervals also include how far the class selection's other candidate models ("
            + ", ".join(f"{k} class{'' if k == 1 else 'es'}" for k in form.classes)
            + ") disagree with the chosen one about each policy: a policy unlike the history's "
            "routine is a counterfactual whose error its backtests cannot show"
        )
        answer["model_form"] = {
            "rule": MODEL_FORM_RULE,
            "variants": form.classes,
            "sd_pp": {
                name: {
                    str(d): round(float(form.level[name][np.searchsorted(days, d)]) * 100, 3)
                    for d in recovery_days
                    if d > 0
                }
                for name in candidates
            },
        }
    return answer


MODEL_FORM_RULE = (
    "the class selection's candidate models (each number of classes, fitted on the same "
    "sample) forecast every candidate too; the root mean square of their forecasts' "
    "differences from the candidate model with the chosen number of classes widens the "
    "intervals in quadrature (a delta's: the differences of their deltas)"
)


@dataclass
class _Form:
    """How far the selection's candidate models disagree (shares, per candidate × day)."""

    classes: list[int]
    level: dict[str, np.ndarray]  # the recovery curve's model-form sd
    delta: dict[str, np.ndarray]  # the delta against the first candidate's


def _model_form(
    history: History,
    fit: Fit,
    candidates: dict[str, list[Policy] | str],
    cohort: Cohort,
    options: Options,
    logging: LoggingPolicy | None,
    groups: _Groups,
) -> _Form | None:
    """The model-form band of calibrated intervals (None without variants).

    Backtests replay the history's own routine, so the error they measure is that of
    forecasting what the history did; a policy unlike it is a counterfactual, whose error no
    backtest of this history shows (on payday_world: "no contacts" 5 pp off with intervals
    0.5 pp wide). The candidate models the class selection compared are as defensible as
    the chosen one on structure (they differ in how many kinds of debtor there are, and so
    in how contact effects and selection are told apart), and where they disagree about a
    policy the data do not settle it. Each forecasts with its point estimate, its class
    posteriors on this history and the same rows and routine as the chosen fit."""
    reference = [v for v in fit.variants if v.classes == fit.layout.classes]
    others = [v for v in fit.variants if v.classes != fit.layout.classes]
    if not reference or not others:
        return None
    curves: list[dict[str, np.ndarray]] = []
    for variant in (reference[0], *others):
        curve = {}
        own = groups.for_another_model(history)
        for name, candidate in candidates.items():
            outcome, total = _simulate_candidate(
                history,
                variant,
                cohort,
                candidate,
                variant.params[None, :],
                options,
                None,
                logging,
                own,
            )
            curve[name] = outcome.settled[0] / total
        curves.append(curve)
    names = list(candidates)
    ref, rest = curves[0], curves[1:]
    level = {n: np.sqrt(np.mean([(c[n] - ref[n]) ** 2 for c in rest], axis=0)) for n in names}
    delta = {
        n: np.sqrt(
            np.mean([((c[n] - c[names[0]]) - (ref[n] - ref[names[0]])) ** 2 for c in rest], axis=0)
        )
        for n in names[1:]
    }
    return _Form([v.classes for v in others], level, delta)


def _stops_early(
    history: History, made: Contacts, candidates: dict[str, list[Policy] | str]
) -> list[str]:
    """A policy that stops contacting where the history went on.

    The model's contact effects fade within BUMP_DAYS (STEP_DAYS for a fee or notice), so
    what an invoice does long after its last contact is learned from a history whose unpaid
    invoices were contacted again. Where nearly all of them were, the history never showed
    a long stretch without contacts, and a policy that stops earlier is forecast by the
    assumption that a contact's effect is gone by then (on payday_world, "no contacts at
    all" came out 5 pp too high at 90 days).
    """
    due = history.due.astype(np.int64)
    settled = np.where(
        history.settled == NOT_SETTLED, np.iinfo(np.int64).max // 4, history.settled - due
    )
    observed_to = history.as_of - due
    last_sent = np.full(history.size, np.iinfo(np.int64).min // 4)
    np.maximum.at(last_sent, made.invoice, made.day)
    found = []
    for name, candidate in candidates.items():
        if isinstance(candidate, str):
            continue
        for policy in candidate:
            days = [s.day for s in policy.steps]
            stop = max(days) if days else 0
            judged = stop + BUMP_DAYS
            unpaid = (settled > judged) & (observed_to >= judged) & ~history.disputed
            if unpaid.sum() < STOPS_EARLY_MIN_INVOICES:
                continue
            share = float((last_sent[unpaid] > stop).mean())
            if share >= STOPS_EARLY_SHARE:
                what = f"makes no contact after day {stop}" if days else "makes no contact"
                after = f" after day {stop}" if days else ""
                found.append(
                    f"{name}: {what}, but {share:.0%} of the history's invoices still unpaid "
                    f"on day {judged} had been contacted{after}: how invoices pay without "
                    "further contacts is not in the history, and the forecast assumes a "
                    f"contact's effect is gone after {BUMP_DAYS} days (it may be too high)"
                )
    return found


def warnings(
    history: History, fit: Fit, candidates: dict[str, list[Policy] | str], options: Options
) -> list[str]:
    found: list[str] = list(fit.warnings)  # the fit's own: convergence, a singular Hessian
    layout = fit.layout
    prior = fit.is_prior()
    policies = [p for c in candidates.values() if not isinstance(c, str) for p in c]
    used_channels = {s.channel for p in policies for s in p.steps}
    for c, channel in enumerate(CHANNELS):
        start = layout.bump.start + c * N_WINDOWS
        if channel in used_channels and prior[start]:
            seen = int((history.act_channel == c).sum())
            how = "never appears" if seen == 0 else f"appears only {seen} times"
            users = ", ".join(
                name
                for name, candidate in candidates.items()
                if not isinstance(candidate, str)
                and any(s.channel == channel for p in candidate for s in p.steps)
            )
            found.append(
                f"{users}: channel '{channel}' {how} in the history: its effect is a prior, "
                "not an estimate"
            )
    if (
        any(s.action == "collection_notice" for p in policies for s in p.steps)
        and prior[layout.notice]
    ):
        found.append(
            "collection notices are (nearly) absent from the history: their effect is a prior"
        )
    if any(s.fee for p in policies for s in p.steps) and prior[layout.fee]:
        found.append("reminder fees are (nearly) absent from the history: their effect is a prior")
    # Timing: days the history never tried are extrapolation when the calendar never varied.
    made = recorded_contacts(history)
    order = np.lexsort((made.day, made.invoice))
    inv, day = made.invoice[order], made.day[order]
    rank = np.arange(len(inv)) - np.searchsorted(inv, inv, side="left") if len(inv) else inv
    for name, candidate in candidates.items():
        if isinstance(candidate, str):
            continue
        for policy in candidate:
            for k, step in enumerate(policy.steps):
                observed = day[rank == k]
                if len(observed) == 0:
                    found.append(
                        f"{name}: no invoice in the history got a contact number {k + 1}; "
                        f"step on day {step.day} rests on the prior"
                    )
                    continue
                low, high = int(np.percentile(observed, 1)), int(np.percentile(observed, 99))
                if high - low < 2 and step.day != int(np.median(observed)):
                    found.append(
                        f"{name}: the history always made contact {k + 1} on day {int(np.median(observed))}; "
                        f"moving it to day {step.day} is an extrapolation: timing effects rest on the "
                        "model's assumptions, not on data"
                    )
                elif not low - 3 <= step.day <= high + 3:
                    found.append(
                        f"{name}: contact {k + 1} on day {step.day} lies outside the days the history "
                        f"tried ({low}..{high}): an extrapolation"
                    )
    found += _stops_early(history, made, candidates)
    calibration = options.calibration
    if not calibration:
        found.append(
            "intervals carry the uncertainty of the parameters and of each debtor's class only, "
            "not the model's own error: calibrate them (`--calibrate`, or a saved model with "
            "backtests) to add the error its backtests measured and how far the class "
            "selection's candidate models disagree about each policy"
        )
    if calibration:
        coverage = calibration.get("coverage_leave_one_split_out")
        measured = f"{coverage:.0%}" if coverage is not None else "an unmeasured share"
        found.append(
            f"intervals include the model-form error of {calibration['splits']} rolling backtests "
            f"of this history; on those backtests they covered {measured} of the days "
            "(each split left out of its own calibration)"
        )
        largest = max((b["from_day"] for b in calibration["bands"] if b.get("points")), default=0)
        if options.horizon > largest + 45:
            found.append(
                f"the backtests reach no further than their last band (from day {largest}): later "
                "days reuse the largest error they measured"
            )
    observed_days = history.as_of - history.due
    if options.horizon > int(observed_days.max(initial=0)):
        found.append(
            f"the horizon of {options.horizon} days is longer than any invoice has been observed: "
            "the last part of the curve is an extrapolation"
        )
    if reference_rate_bp(day_date(history.as_of).isoformat()) is None and any(
        p.interest_mode == "statutory" for p in policies
    ):
        found.append(
            "no reference rate is known for the as-of date: statutory interest income is 0"
        )
    return sorted(set(found), key=found.index)
