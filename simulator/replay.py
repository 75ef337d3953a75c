"""Expected outcomes of a cohort under a contact schedule: exact, not simulated.

A policy's steps are deterministic given that an invoice is unpaid, so an invoice's expected
survival follows from its hazard path: S(t) = Π (1 − h(u)), and a mixture of such paths
over the latent classes. Invoices sharing static code, first day at risk and schedule share
one path, so the work is done once per such row, weighted by the rows' amounts and counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.exposure import Contacts, ContactState, build_segments
from simulator.model import (
    CHANNELS,
    FIRST_DAY,
    Layout,
    class_time_design,
    disputed_of,
    static_design,
)
from simulator.policy import Policy


@dataclass(frozen=True)
class Rows:
    """Units of replay: each with a static code, first day at risk and per-class weights."""

    static: np.ndarray  # int64 static code
    start: np.ndarray  # int64 first relative day at risk
    # Invoiced amount and invoice count in each class: rows × classes, or draws × rows ×
    # classes when each parameter draw also draws the debtors' classes.
    amount: np.ndarray
    count: np.ndarray
    contacts: Contacts  # the schedule, `invoice` indexing rows
    # Fee in minor units charged with each contact of the schedule (for fee income); None
    # when no fee income is asked for.
    contact_fee: np.ndarray | None = None
    # Σ amount² of each row's invoices: the outcome noise of a finite cohort (backtests).
    amount_sq: np.ndarray | None = None


@dataclass(frozen=True)
class Paths:
    """Expected survival per row and class, as cumulative settled amount and counts by day."""

    days: np.ndarray  # relative days, FIRST_DAY .. horizon
    settled_amount: np.ndarray  # (draws × days) expected amount settled by each day
    unpaid_count_at: dict[
        int, np.ndarray
    ]  # day -> (draws,) expected count still unpaid that morning
    unpaid_rows_at: dict[int, np.ndarray]  # day -> (draws × rows) survival weights by count
    # From `run_observed` with `observed_until`: the expected settled share by each day
    # among the rows observed through it.
    observed_share: np.ndarray | None = None
    # From `run`: expected contacts sent within the horizon (draws × channels), fees charged
    # on invoices then paid within the horizon (draws), and, with `Rows.amount_sq`, the
    # variance of the settled amount by day that the cohort's own chance adds (days).
    contacts_made: np.ndarray | None = None
    fee_income: np.ndarray | None = None
    outcome_var: np.ndarray | None = None


def linear_parts(params: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """(static part per static code: draws × static codes, time part per time code and
    class: draws × time codes × classes) of logit h. The time part holds the class shift
    and the class's own contact effects.

    `params` may be one vector or a stack of draws (draws × size).
    """
    params = np.atleast_2d(params)
    static = params[:, layout.beta] @ static_design().T
    time = np.einsum("kcp,dp->dck", class_time_design(layout), params)
    return static, np.ascontiguousarray(time)


def run(
    params: np.ndarray,
    layout: Layout,
    rows: Rows,
    horizon: int,
    watch_days: tuple[int, ...] = (),
) -> Paths:
    """Day by day from FIRST_DAY to `horizon`, for every parameter draw at once."""
    static_eta, time_eta = linear_parts(params, layout)
    draws = len(static_eta)
    n = len(rows.static)
    # Each row's time code as piecewise-constant segments, applied on the days they begin:
    # a day touches only the rows whose code changes, not a lookup for every row.
    segments = build_segments(
        rows.start,
        np.full(n, horizon + 1),
        np.zeros(n, dtype=bool),
        rows.contacts,
        disputed_of(rows.static),
    )
    seg_order = np.argsort(segments.start, kind="stable")
    seg_row, seg_code = segments.invoice[seg_order], segments.code[seg_order]
    survival = np.ones((draws, n, layout.classes))
    # odds of the static and the time part, multiplied each day instead of exp(a + b): the
    # exponentials are taken once, not for every draw × row × class on every day
    static_odds = np.exp(static_eta[:, rows.static][:, :, None])  # draws × rows × 1
    time_odds = np.exp(time_eta)  # draws × time codes × classes
    days = np.arange(FIRST_DAY, horizon + 1)
    settled = np.zeros((draws, len(days)))
    amount = (
        rows.amount
        if rows.amount.ndim == 3
        else np.broadcast_to(rows.amount, (draws, *rows.amount.shape))
    )
    count = (
        rows.count
        if rows.count.ndim == 3
        else np.broadcast_to(rows.count, (draws, *rows.count.shape))
    )
    total_amount = amount[0].sum()
    unpaid_count_at: dict[int, np.ndarray] = {}
    unpaid_rows_at: dict[int, np.ndarray] = {}
    watch = set(watch_days)
    # Contacts are counted the morning they are sent, weighted by the chance the invoice is
    # still unpaid then; those sent before the first modelled day count on that day.
    c = rows.contacts
    within = c.day <= horizon
    sent_day = np.maximum(c.day[within], FIRST_DAY)
    order = np.argsort(sent_day, kind="stable")
    sent_row, sent_day = c.invoice[within][order], sent_day[order]
    sent_channel = c.channel[within][order]
    sent_fee = (
        rows.contact_fee[within][order] if rows.contact_fee is not None else np.zeros(len(sent_row))
    )
    bounds = [*np.searchsorted(sent_day, days, side="left").tolist(), len(sent_day)]
    seg_bounds = [
        *np.searchsorted(segments.start[seg_order], days, side="left").tolist(),
        len(seg_row),
    ]
    codes = np.zeros(n, dtype=np.int64)
    contacts_made = np.zeros((draws, len(CHANNELS)))
    fee_charged = np.zeros(draws)  # Σ fee × unpaid count when it was charged
    noise = rows.amount_sq is not None
    outcome_var = np.zeros(len(days))
    for i, t in enumerate(days.tolist()):
        at_risk = rows.start <= t
        if t in watch:
            unpaid_rows_at[t] = (survival * count).sum(axis=2)
            unpaid_count_at[t] = unpaid_rows_at[t].sum(axis=1)
        lo, hi = bounds[i], bounds[i + 1]
        if hi > lo:
            on_day = sent_row[lo:hi]
            unpaid = (survival[:, on_day] * count[:, on_day]).sum(axis=2)
            contacts_made += unpaid @ np.eye(len(CHANNELS))[sent_channel[lo:hi]]
            fee_charged += unpaid @ sent_fee[lo:hi]
        changed = slice(seg_bounds[i], seg_bounds[i + 1])
        codes[seg_row[changed]] = seg_code[changed]
        if at_risk.all():
            survival /= 1.0 + static_odds * time_odds[:, codes]  # × (1 − σ(η))
        elif at_risk.any():
            survival[:, at_risk] /= 1.0 + static_odds[:, at_risk] * time_odds[:, codes[at_risk]]
        settled[:, i] = total_amount - np.einsum("drk,drk->d", survival, amount)
        if noise:
            paid = 1.0 - (survival[0] * count[0]).sum(axis=1) / np.maximum(
                count[0].sum(axis=1), 1e-300
            )
            outcome_var[i] = rows.amount_sq @ (paid * (1.0 - paid))
    for t in sorted(day for day in watch if day > horizon):  # "the morning after the horizon"
        unpaid_rows_at[t] = (survival * count).sum(axis=2)
        unpaid_count_at[t] = unpaid_rows_at[t].sum(axis=1)
    # a fee is income only when the invoice is then paid within the horizon
    charged = sent_fee > 0
    fee_rows = sent_row[charged]
    still_unpaid = (survival[:, fee_rows] * count[:, fee_rows]).sum(axis=2)
    fee_income = fee_charged - still_unpaid @ sent_fee[charged]
    return Paths(
        days,
        settled,
        unpaid_count_at,
        unpaid_rows_at,
        contacts_made=contacts_made,
        fee_income=fee_income,
        outcome_var=outcome_var if noise else None,
    )


def policy_schedule(
    policy: Policy | None, n: int, fee_agreed: np.ndarray, disputed: np.ndarray, b2b: np.ndarray
) -> Contacts:
    """The contacts a policy makes for n rows (all unpaid), given each row's flags."""
    if policy is None or not policy.steps:
        return Contacts.empty()
    invoice, day, channel, notice, fee = [], [], [], [], []
    open_rows = np.flatnonzero(~disputed)  # a disputed invoice gets no contacts
    compensation_given = False
    for step in policy.steps:
        is_notice = step.action == "collection_notice"
        charged = np.full(len(open_rows), step.fee > 0)
        if step.fee > 0 and not is_notice:
            charged &= fee_agreed[open_rows]  # a reminder fee only where it was agreed
        if policy.compensation and step.day > 0 and not compensation_given:
            charged |= b2b[open_rows]  # B2B compensation falls due with the first late step
            compensation_given = True
        invoice.append(open_rows)
        day.append(np.full(len(open_rows), step.day))
        channel.append(np.full(len(open_rows), CHANNELS.index(step.channel)))
        notice.append(np.full(len(open_rows), is_notice))
        fee.append(charged)
    return Contacts(
        np.concatenate(invoice).astype(np.int64),
        np.concatenate(day).astype(np.int64),
        np.concatenate(channel).astype(np.int64),
        np.concatenate(notice),
        np.concatenate(fee),
    )


def policy_fees(policy: Policy | None, contacts: Contacts) -> np.ndarray:
    """Fee in minor units charged with each contact of `policy_schedule(policy, ...)`.

    The schedule lists the steps in order, each for the same rows, so the k-th block of
    contacts belongs to step k.
    """
    if policy is None or not policy.steps or not len(contacts.day):
        return np.zeros(len(contacts.day))
    per_step = len(contacts.day) // len(policy.steps)
    fee = np.repeat([float(step.fee) for step in policy.steps], per_step)
    return np.where(contacts.fee, fee, 0.0)


def first_day(issue: np.ndarray, due: np.ndarray) -> np.ndarray:
    return np.maximum(issue.astype(np.int64) - due.astype(np.int64), FIRST_DAY)


def run_observed(
    params: np.ndarray,
    layout: Layout,
    rows: Rows,
    horizon: int,
    last_at_risk: np.ndarray,
    censored: np.ndarray,
    observed_until: np.ndarray | None = None,
) -> Paths:
    """The compensator of the recorded contacts: a diagnostic (`backtest.observed_minus_expected`),
    not a forecast. `actual` is the estimated routine replayed by `run`.

    A recorded schedule stops when the invoice is paid: the contacts the client would have
    made afterwards are unknowable, and replaying the truncated schedule as if it were the
    plan would understate payment (every paid invoice would look uncontacted after paying).
    So on the days an invoice was observed at risk, the expected settlements are the model's
    hazards summed over those days (the compensator, which the actual count matches in
    expectation), each day's hazard mixing the classes by how likely each is *given that the
    invoice is still unpaid*; after its last observed day an unpaid invoice is projected
    forward with its survival and no further (unknown) contacts. `last_at_risk` is each
    row's last day at risk (its settlement day, or the last observed day), `censored` marks
    rows still unpaid then.
    """
    static_eta, time_eta = linear_parts(params, layout)
    draws = len(static_eta)
    n = len(rows.static)
    state = ContactState(n, rows.contacts, rows.start, disputed_of(rows.static))
    row_index = np.arange(n)
    base = static_eta[:, rows.static][:, :, None]
    amount = (
        rows.amount
        if rows.amount.ndim == 3
        else np.broadcast_to(rows.amount, (draws, *rows.amount.shape))
    )
    total = amount.sum(axis=2)  # draws × rows: each row's amount
    days = np.arange(FIRST_DAY, horizon + 1)
    weighted = amount.copy()  # amount in class k × survival in class k so far
    expected = np.zeros((draws, n))  # expected settled amount of each row on observed days
    at_last = np.ones((draws, n))  # Σ_k weighted at the row's last observed day
    settled = np.zeros((draws, len(days)))
    observed = np.zeros((draws, len(days)))
    projected_rows = np.zeros(n, dtype=bool)
    for i, t in enumerate(days.tolist()):
        live = rows.start <= t
        if live.any():
            index = row_index[live]
            codes = state.codes(index, np.full(len(index), t))
            hazard = 1.0 / (1.0 + np.exp(-(base[:, live] + time_eta[:, codes])))
            before = weighted[:, live]
            alive = before.sum(axis=2)
            mixed = np.einsum("drk,drk->dr", before, hazard) / np.maximum(alive, 1e-300)
            observed_day = t <= last_at_risk[live]
            expected[:, live] += total[:, live] * mixed * observed_day
            weighted[:, live] = before * (1.0 - hazard)
            ending = index[last_at_risk[live] == t]
            at_last[:, ending] = weighted[:, ending].sum(axis=2)
            projected_rows[index[censored[live] & (t > last_at_risk[live])]] = True
        share_left = weighted[:, projected_rows].sum(axis=2) / np.maximum(
            at_last[:, projected_rows], 1e-300
        )
        projected = (total[:, projected_rows] * (1.0 - share_left)).sum(axis=1)
        settled[:, i] = expected.sum(axis=1) + projected
        if observed_until is not None:
            seen = observed_until >= t
            seen_total = total[0, seen].sum()
            observed[:, i] = (
                expected[:, seen].sum(axis=1) / seen_total if seen_total > 0 else np.nan
            )
    return Paths(days, settled, {}, {}, observed if observed_until is not None else None)
