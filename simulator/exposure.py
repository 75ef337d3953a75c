"""Exposure segments: each invoice's days at risk, cut where its hazard's inputs change.

Within a segment an invoice's time code (baseline bin, most recent contact's bump window,
fee and notice state) is constant, so the segment stands for `length` identical invoice-days.
A 1-million-invoice history becomes some 15 million segments, not 200 million invoice-days;
the fit aggregates them further into (class, static code, time code) cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.model import (
    BIN_LOWER,
    BUMP_DAYS,
    DELIVERY_LAG,
    FIRST_DAY,
    STEP_DAYS,
    UNCONTACTED_LOWER,
    WINDOW_LOWER,
    contact_code,
    time_code,
    uncontacted_age,
)

_SPAN = np.int64(1 << 20)  # days per invoice in a combined (invoice, day) sort key
_OFFSET = np.int64(1 << 19)  # makes relative days non-negative inside the key


@dataclass(frozen=True)
class Contacts:
    """A contact schedule: one row per contact, days relative to each invoice's due date."""

    invoice: np.ndarray  # int64 index
    day: np.ndarray  # int64, day sent relative to due
    channel: np.ndarray  # int64 index into model.CHANNELS
    notice: np.ndarray  # bool: a collection notice (inkassokrav)
    fee: np.ndarray  # bool: a fee was charged with it

    @classmethod
    def empty(cls) -> Contacts:
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z, z, z.astype(bool), z.astype(bool))

    def select(self, mask: np.ndarray) -> Contacts:
        return Contacts(
            self.invoice[mask],
            self.day[mask],
            self.channel[mask],
            self.notice[mask],
            self.fee[mask],
        )


@dataclass(frozen=True)
class Segments:
    invoice: np.ndarray  # int64
    start: np.ndarray  # int64, relative day
    length: np.ndarray  # int64 days
    code: np.ndarray  # int64 time code
    event: np.ndarray  # bool: the invoice settles on this segment's last day


def _key(invoice: np.ndarray, day: np.ndarray) -> np.ndarray:
    return invoice.astype(np.int64, copy=False) * _SPAN + (
        day.astype(np.int64, copy=False) + _OFFSET
    )


class ContactState:
    """Answers "what is this invoice's time code on day t" for many (invoice, t) at once."""

    def __init__(
        self, n: int, contacts: Contacts, start: np.ndarray, disputed: np.ndarray | None = None
    ) -> None:
        """`start`: each invoice's first day at risk, from which its uncontacted age runs;
        `disputed` invoices have none (`model.UNCONTACTED_LOWER`)."""
        self.start = np.maximum(start.astype(np.int64), FIRST_DAY)
        self.ages = np.ones(n, dtype=bool) if disputed is None else ~disputed.astype(bool)
        delivered = contacts.day + DELIVERY_LAG[contacts.channel]
        order = np.lexsort((contacts.day, contacts.invoice))  # rank: order sent per invoice
        invoice_sorted = contacts.invoice[order]
        first_of_invoice = (
            np.r_[True, np.diff(invoice_sorted) != 0] if len(order) else np.zeros(0, bool)
        )
        group_start = (
            np.maximum.accumulate(np.where(first_of_invoice, np.arange(len(order)), 0))
            if len(order)
            else order
        )
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order)) - group_start
        by_delivery = np.lexsort((delivered, contacts.invoice))
        self.keys = _key(contacts.invoice[by_delivery], delivered[by_delivery])
        self.invoice = contacts.invoice[by_delivery]
        self.delivered = delivered[by_delivery]
        self.channel = contacts.channel[by_delivery]
        self.rank = rank[by_delivery]
        never = np.iinfo(np.int64).max // 4
        self.fee_day = np.full(n, never, dtype=np.int64)
        np.minimum.at(self.fee_day, contacts.invoice[contacts.fee], contacts.day[contacts.fee])
        self.notice_day = np.full(n, never, dtype=np.int64)
        np.minimum.at(
            self.notice_day, contacts.invoice[contacts.notice], delivered[contacts.notice]
        )

    def codes(self, invoice: np.ndarray, t: np.ndarray) -> np.ndarray:
        latest = np.searchsorted(self.keys, _key(invoice, t), side="right") - 1
        valid = latest >= 0
        safe = np.where(valid, latest, 0)
        if len(self.keys):
            valid &= self.invoice[safe] == invoice
            channel = np.where(valid, self.channel[safe], -1)
            since = np.where(valid, t - self.delivered[safe], -1)
            rank = np.where(valid, self.rank[safe], 0)
        else:
            channel = np.full(len(t), -1)
            since = np.full(len(t), -1)
            rank = np.zeros(len(t), dtype=np.int64)
        contact = contact_code(channel, since, rank)
        fee_since = t - self.fee_day[invoice]
        notice_since = t - self.notice_day[invoice]
        ages = self.ages[invoice] & ~valid  # a delivered contact ends the clock
        return time_code(
            t,
            contact,
            (fee_since >= 0) & (fee_since < STEP_DAYS),
            (notice_since >= 0) & (notice_since < STEP_DAYS),
            np.where(ages, uncontacted_age(t - self.start[invoice]), 0),
        )


def build_segments(
    start: np.ndarray,
    end: np.ndarray,
    event: np.ndarray,
    contacts: Contacts,
    disputed: np.ndarray | None = None,
) -> Segments:
    """Segments of days [start, end) per invoice; `event` marks invoices settling on end - 1."""
    n = len(start)
    start = np.maximum(start.astype(np.int64), FIRST_DAY)
    end = end.astype(np.int64, copy=False)
    live = end > start
    state = ContactState(n, contacts, start, disputed)
    # Candidate cut points: baseline bins for everyone, window edges after each delivery,
    # the fee and notice days; kept where they fall strictly inside (start, end).
    cut_invoice = [np.repeat(np.arange(n), len(BIN_LOWER))]
    cut_day = [np.tile(BIN_LOWER, n)]
    for lower in (*WINDOW_LOWER, BUMP_DAYS):
        cut_invoice.append(state.invoice)
        cut_day.append(state.delivered + lower)
    for lower in UNCONTACTED_LOWER[1:]:
        cut_invoice.append(np.arange(n))
        cut_day.append(start + lower)
    for day in (state.fee_day, state.notice_day):
        has = day < np.iinfo(np.int64).max // 8
        for after in (0, STEP_DAYS):
            cut_invoice.append(np.flatnonzero(has))
            cut_day.append(day[has] + after)
    cut_invoice.append(np.flatnonzero(live))
    cut_day.append(start[live])
    invoice = np.concatenate(cut_invoice).astype(np.int64, copy=False)
    day = np.concatenate(cut_day).astype(np.int64, copy=False)
    inside = live[invoice] & (day >= start[invoice]) & (day < end[invoice])
    keys = _sorted_unique(_key(invoice[inside], day[inside]))
    seg_invoice = keys // _SPAN
    seg_start = keys % _SPAN - _OFFSET
    last = np.r_[seg_invoice[1:] != seg_invoice[:-1], True] if len(keys) else np.zeros(0, bool)
    next_start = np.r_[seg_start[1:], 0] if len(keys) else seg_start
    seg_end = np.where(last, end[seg_invoice], next_start)
    return Segments(
        invoice=seg_invoice,
        start=seg_start,
        length=seg_end - seg_start,
        code=state.codes(seg_invoice, seg_start),
        event=last & event[seg_invoice],
    )


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique by sorting: for tens of millions of int64 keys several times faster than the
    hash-based path numpy picks when no inverse is asked for."""
    values = np.sort(values)
    if len(values) == 0:
        return values
    return values[np.r_[True, values[1:] != values[:-1]]]
