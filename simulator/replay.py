"""Expected outcomes of a cohort under a contact schedule: exact, not simulated.

A policy's steps are deterministic given that an invoice is unpaid, so an invoice's expected
survival follows from its hazard path: S(t) = Π (1 − h(u)), and a mixture of such paths
over the latent classes. Invoices sharing static code, first day at risk and schedule share
one path, so the work is done once per such row, weighted by the rows' amounts and counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.exposure import Contacts, ContactState
from simulator.model import FIRST_DAY, Layout, static_design, time_design
from simulator.policy import Policy


@dataclass(frozen=True)
class Rows:
    """Units of replay: each with a static code, first day at risk and per-class weights."""

    static: np.ndarray  # int64 static code
    start: np.ndarray  # int64 first relative day at risk
    amount: np.ndarray  # float (rows × classes): invoiced amount in each class
    count: np.ndarray  # float (rows × classes): invoices in each class
    contacts: Contacts  # the schedule, `invoice` indexing rows


@dataclass(frozen=True)
class Paths:
    """Expected survival per row and class, as cumulative settled amount and counts by day."""

    days: np.ndarray  # relative days, FIRST_DAY .. horizon
    settled_amount: np.ndarray  # (draws × days) expected amount settled by each day
    unpaid_count_at: dict[
        int, np.ndarray
    ]  # day -> (draws,) expected count still unpaid that morning
    unpaid_rows_at: dict[int, np.ndarray]  # day -> (draws × rows) survival weights by count


def linear_parts(params: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(static part per static code, time part per time code, class shifts) of logit h.

    `params` may be one vector or a stack of draws (draws × size).
    """
    params = np.atleast_2d(params)
    static = params[:, layout.beta] @ static_design().T
    time = params @ time_design(layout).T
    shift = np.concatenate([np.zeros((len(params), 1)), params[:, layout.delta]], axis=1)
    return static, time, shift


def run(
    params: np.ndarray, layout: Layout, rows: Rows, horizon: int, watch_days: tuple[int, ...] = ()
) -> Paths:
    """Day by day from FIRST_DAY to `horizon`, for every parameter draw at once."""
    static_eta, time_eta, shift = linear_parts(params, layout)
    draws = len(static_eta)
    n = len(rows.static)
    state = ContactState(n, rows.contacts)
    row_index = np.arange(n)
    log_s = np.zeros((draws, n, layout.classes))
    base = static_eta[:, rows.static][:, :, None] + shift[:, None, :]  # draws × rows × classes
    days = np.arange(FIRST_DAY, horizon + 1)
    settled = np.zeros((draws, len(days)))
    total_amount = rows.amount.sum()
    unpaid_count_at: dict[int, np.ndarray] = {}
    unpaid_rows_at: dict[int, np.ndarray] = {}
    watch = set(watch_days)
    for i, t in enumerate(days.tolist()):
        at_risk = rows.start <= t
        if t in watch:
            survival = np.exp(log_s)
            unpaid_rows_at[t] = (survival * rows.count[None]).sum(axis=2)
            unpaid_count_at[t] = unpaid_rows_at[t].sum(axis=1)
        if at_risk.any():
            codes = state.codes(row_index[at_risk], np.full(at_risk.sum(), t))
            eta = base[:, at_risk] + time_eta[:, codes][:, :, None]
            log_s[:, at_risk] += -np.logaddexp(0.0, eta)  # log(1 − σ(η))
        settled[:, i] = total_amount - (np.exp(log_s) * rows.amount[None]).sum(axis=(1, 2))
    return Paths(days, settled, unpaid_count_at, unpaid_rows_at)


def policy_schedule(
    policy: Policy | None, n: int, fee_agreed: np.ndarray, disputed: np.ndarray, b2b: np.ndarray
) -> Contacts:
    """The contacts a policy makes for n rows (all unpaid), given each row's flags."""
    if policy is None or not policy.steps:
        return Contacts.empty()
    from simulator.model import CHANNELS

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


def first_day(issue: np.ndarray, due: np.ndarray) -> np.ndarray:
    return np.maximum(issue.astype(np.int64) - due.astype(np.int64), FIRST_DAY)
