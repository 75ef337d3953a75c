"""The history's own contact routine, estimated: what the client would have sent an unpaid invoice.

Recorded contacts cannot be replayed as a plan: contacts go only to the unpaid, so a paid
invoice's schedule stops where it was paid, and replaying the stopped schedule makes every
paid invoice look uncontacted afterwards. Instead the routine is modelled as a policy of its
own and replayed like any candidate (g-computation):

.. math::

    \\lambda_k(u) = P(\\text{contact } k \\text{ on } u \\mid \\text{unpaid, contact } k-1
    \\text{ made}, \\text{ contact } k \\text{ not yet})

a discrete hazard for the first contact by day relative to due and for every later one by
days since the previous contact, with the contact's kind (channel, collection notice, fee)
drawn from its share among the k-th contacts. Payment censors the process; so does the
as-of date. Everything is estimated per *stratum* (due month × B2C × fee agreed × disputed),
because routines change over time: a month borrows the previous month's estimate as a prior
of `PSEUDO_INVOICES` invoices, so a month whose later days are not yet observed (recent
invoices) continues the latest routine that was, while a month with data speaks for itself.

A schedule drawn from these hazards is the plan "if the invoice were never paid"; the
replay applies it only while the invoice is unpaid, so mixing the replay over drawn
schedules gives the expected outcome of the routine (sequential ignorability: the routine
decides from the past, not from what the debtor is about to do).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.exposure import Contacts
from simulator.fit import recorded_contacts
from simulator.history import NOT_SETTLED, History
from simulator.model import CHANNELS, FIRST_DAY
from simulator.replay import first_day

# Contacts beyond this rank reuse the hazard and kinds of the last rank.
MAX_RANK = 6
# At most this many contacts are drawn per schedule (a routine that keeps reminding).
MAX_CONTACTS = 12
# Contact days modelled relative to due: FIRST_DAY .. LAST_DAY.
LAST_DAY = 240
SPAN = LAST_DAY - FIRST_DAY + 1
# Weight of the previous month's estimate, in invoices, when a month's own data are thin.
PSEUDO_INVOICES = 20.0
# Weight of all strata pooled, in invoices, in a stratum's first estimate: small, so that a
# stratum the routine never contacts (disputed invoices) stays (nearly) uncontacted.
PSEUDO_ACROSS_STRATA = 1.0
# Kinds of contact: channel × collection notice × fee charged.
N_KINDS = len(CHANNELS) * 4
N_STRATA = 8  # B2C × fee agreed × disputed
# Bins of days relative to due (lower bounds): what a contact is, and how soon the next one
# follows, depend on where in the invoice's life it falls (a pre-due email is followed by the
# first reminder, a reminder by the next one after a routine's usual gap).
DAY_BIN_LOWER = np.array([FIRST_DAY, 0, 7, 14, 21, 30, 45, 60, 90], dtype=np.int64)
N_DAY_BINS = len(DAY_BIN_LOWER)
# A hazard's state: the contact's rank, the day bin of the previous contact (none for the
# first) and whether a collection notice has gone out (after one, routines usually stop).
N_STATES = MAX_RANK * (N_DAY_BINS + 1) * 2


def day_bin(day: np.ndarray) -> np.ndarray:
    return np.searchsorted(DAY_BIN_LOWER, np.maximum(day, FIRST_DAY), side="right") - 1


def state_of(rank: np.ndarray, previous_day: np.ndarray, noticed: np.ndarray) -> np.ndarray:
    """Hazard state of contact number rank + 1 (0-based rank) after a contact on previous_day,
    `noticed` when a collection notice was among the contacts before it."""
    rank = np.minimum(rank, MAX_RANK - 1)
    state = rank * (N_DAY_BINS + 1) + np.where(rank > 0, 1 + day_bin(previous_day), 0)
    return state * 2 + noticed.astype(np.int64)


def kind_of(channel: np.ndarray, notice: np.ndarray, fee: np.ndarray) -> np.ndarray:
    return (channel.astype(np.int64) * 2 + notice.astype(np.int64)) * 2 + fee.astype(np.int64)


def stratum_of(b2c: np.ndarray, fee_agreed: np.ndarray, disputed: np.ndarray) -> np.ndarray:
    return (b2c.astype(np.int64) * 2 + fee_agreed.astype(np.int64)) * 2 + disputed.astype(np.int64)


def month_of(day: np.ndarray) -> np.ndarray:
    """Calendar month number (year × 12 + month − 1) of day numbers since 1970-01-01."""
    d = np.asarray(day).astype("datetime64[D]")
    return d.astype("datetime64[M]").astype(np.int64)


@dataclass(frozen=True)
class LoggingPolicy:
    """Contact hazards and kinds by (month, stratum, rank); see the module docstring."""

    first_month: int  # month number of index 0
    # months × strata × N_STATES × SPAN: for the first contact indexed by day − FIRST_DAY,
    # for later ones by days since the previous contact.
    hazard: np.ndarray
    # months × strata × ranks × previous kind (N_KINDS = none) × day bin × N_KINDS, rows
    # summing to 1: what a contact is depends on what came before it and on when it is sent.
    kinds: np.ndarray
    fee_amount: np.ndarray  # N_KINDS: mean fee charged with a contact of that kind
    contacts: int  # recorded contacts it was estimated from

    def month_index(self, due: np.ndarray) -> np.ndarray:
        """Row of each due day: months after the last estimated one continue its routine."""
        return np.clip(month_of(due) - self.first_month, 0, len(self.hazard) - 1)

    def draw(
        self,
        month: np.ndarray,
        stratum: np.ndarray,
        start: np.ndarray,
        horizon: int,
        rng: np.random.Generator,
        u_first: np.ndarray | None = None,
    ) -> Contacts:
        """One schedule per row (month index, stratum, first day at risk), as if never paid.

        `u_first` optionally gives the uniforms of the first contact (stratified draws make
        a few schedules per group represent its distribution evenly).
        """
        n = len(month)
        days = np.arange(SPAN)
        inv_out, day_out, kind_out = [], [], []
        alive = np.arange(n)
        previous = np.full(n, FIRST_DAY - 1, dtype=np.int64)
        previous_kind = np.full(n, N_KINDS, dtype=np.int64)
        noticed = np.zeros(n, dtype=bool)
        for k in range(MAX_CONTACTS):
            if not len(alive):
                break
            r = min(k, MAX_RANK - 1)
            state = state_of(np.full(len(alive), k), previous[alive], noticed[alive])
            # Rows in the same (month, stratum, state), and for the first contact the same
            # first day at risk, share one distribution: its CDF is computed once.
            key = (month[alive] * N_STRATA + stratum[alive]) * N_STATES + state
            if k == 0:
                key = key * SPAN + np.clip(start[alive] - FIRST_DAY, 0, SPAN - 1)
            unique, which = np.unique(key, return_inverse=True)
            which = which.ravel()
            first = np.zeros(len(unique), dtype=np.int64)
            first[which] = np.arange(len(alive))
            rep = alive[first]
            h = self.hazard[month[rep], stratum[rep], state[first]]  # unique × SPAN
            if k == 0:
                origin = np.full(len(alive), FIRST_DAY, dtype=np.int64)
                h = np.where(days[None, :] + FIRST_DAY >= start[rep, None], h, 0.0)
            else:
                origin = previous[alive]
            cdf = 1.0 - np.cumprod(1.0 - h, axis=1)
            u = u_first[alive] if (k == 0 and u_first is not None) else rng.random(len(alive))
            # each row's first day whose CDF reaches its uniform: one search over the CDFs
            # laid end to end (each shifted by 2 × its index, CDFs lie in [0, 1])
            flat = (cdf + 2.0 * np.arange(len(unique))[:, None]).ravel()
            offset = np.searchsorted(flat, u + 2.0 * which, side="left") - which * SPAN
            made = offset < SPAN
            made &= origin + np.minimum(offset, SPAN - 1) <= horizon  # past it nothing matters
            rows = alive[made]
            day = origin[made] + offset[made]
            p = self.kinds[month[rows], stratum[rows], r, previous_kind[rows], day_bin(day)]
            kind = (rng.random(len(rows))[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
            kind = np.minimum(kind, N_KINDS - 1)
            inv_out.append(rows)
            day_out.append(day)
            kind_out.append(kind)
            previous[rows] = day
            previous_kind[rows] = kind
            noticed[rows] |= (kind // 2) % 2 == 1
            alive = rows
        if not inv_out:
            return Contacts.empty()
        invoice = np.concatenate(inv_out).astype(np.int64)
        day = np.concatenate(day_out).astype(np.int64)
        kind = np.concatenate(kind_out).astype(np.int64)
        return Contacts(invoice, day, kind // 4, (kind // 2) % 2 == 1, kind % 2 == 1)

    def fees(self, contacts: Contacts) -> np.ndarray:
        """Fee in minor units charged with each contact of a schedule."""
        kind = kind_of(contacts.channel, contacts.notice, contacts.fee)
        return np.where(contacts.fee, self.fee_amount[kind], 0.0)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (saved models carry the routine they forecast `actual` with)."""
        return {
            "first_month": int(self.first_month),
            "hazard": np.round(self.hazard, 6).tolist(),
            "kinds": np.round(self.kinds, 6).tolist(),
            "fee_amount": self.fee_amount.tolist(),
            "contacts": int(self.contacts),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> LoggingPolicy:
        return cls(
            int(raw["first_month"]),
            np.asarray(raw["hazard"], dtype=np.float64),
            np.asarray(raw["kinds"], dtype=np.float64),
            np.asarray(raw["fee_amount"], dtype=np.float64),
            int(raw["contacts"]),
        )


def estimate(
    due: np.ndarray,
    start: np.ndarray,
    last_at_risk: np.ndarray,
    stratum: np.ndarray,
    contacts: Contacts,
    fee_minor: np.ndarray,
) -> LoggingPolicy:
    """The routine from recorded contacts (days relative to due, `invoice` indexing rows).

    `start` is each invoice's first day at risk, `last_at_risk` its last observed day unpaid
    (the settlement day, or the as-of date); contacts after it are ignored.
    """
    n = len(due)
    month = month_of(due)
    first_month = int(month.min()) if n else 0
    m_index = month - first_month
    months = int(m_index.max()) + 1 if n else 1
    keep = contacts.day <= last_at_risk[contacts.invoice]
    keep &= contacts.day >= np.maximum(start[contacts.invoice], FIRST_DAY)
    keep &= contacts.day <= LAST_DAY
    inv = contacts.invoice[keep]
    day = contacts.day[keep]
    kind = kind_of(contacts.channel[keep], contacts.notice[keep], contacts.fee[keep])
    fee_paid = fee_minor[keep]
    order = np.lexsort((day, inv))
    inv, day, kind, fee_paid = inv[order], day[order], kind[order], fee_paid[order]
    first_of = np.r_[True, inv[1:] != inv[:-1]] if len(inv) else np.zeros(0, bool)
    group_start = np.maximum.accumulate(np.where(first_of, np.arange(len(inv)), 0))
    rank = np.arange(len(inv)) - group_start if len(inv) else inv
    prev_day = np.where(first_of, FIRST_DAY, np.r_[FIRST_DAY, day[:-1]])

    shape = (months, N_STRATA, N_STATES, SPAN + 1)
    at_risk = np.zeros(int(np.prod(shape)))
    events = np.zeros(int(np.prod(shape)))

    def cell(m: np.ndarray, s: np.ndarray, state: np.ndarray, offset: np.ndarray) -> np.ndarray:
        return ((m * N_STRATA + s) * N_STATES + state) * (SPAN + 1) + offset

    def add_interval(
        rows: np.ndarray,
        r: np.ndarray,
        origin: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
        noticed: np.ndarray,
    ) -> None:
        """Rows at risk of contact rank r on days lo..hi (offsets from `origin`, the previous
        contact's day for r > 0)."""
        ok = hi >= lo
        rows, r, origin, lo, hi = rows[ok], r[ok], origin[ok], lo[ok], hi[ok]
        r = state_of(r, origin, noticed[ok])
        a = np.clip(lo - origin, 0, SPAN)
        b = np.clip(hi - origin + 1, 0, SPAN)
        m, s = m_index[rows], stratum[rows]
        at_risk[:] += np.bincount(cell(m, s, r, a), minlength=len(at_risk))
        at_risk[:] -= np.bincount(cell(m, s, r, b), minlength=len(at_risk))

    everyone = np.arange(n)
    low = np.maximum(start, FIRST_DAY).astype(np.int64)
    last = np.minimum(last_at_risk, LAST_DAY).astype(np.int64)
    # rank 0: from the first day at risk to the first contact (event) or the end (censored)
    first_day_of = np.full(n, np.iinfo(np.int64).max // 4)
    first_day_of[inv[first_of]] = day[first_of]
    has_first = first_day_of <= last
    add_interval(
        everyone,
        np.zeros(n, np.int64),
        np.full(n, FIRST_DAY),
        low,
        np.where(has_first, first_day_of, last),
        np.zeros(n, dtype=bool),
    )
    # whether a notice went out up to and including each contact, and before it
    is_notice = ((kind // 2) % 2 == 1).astype(np.int64)
    running = np.cumsum(is_notice)
    base = (running - is_notice)[group_start] if len(inv) else running
    noticed_through = running - base > 0
    noticed_before = np.where(first_of, False, np.r_[False, noticed_through[:-1]])
    # later ranks: from the previous contact's day to this contact (event) ...
    later = ~first_of
    add_interval(
        inv[later],
        rank[later],
        prev_day[later],
        prev_day[later],
        day[later],
        noticed_before[later],
    )
    # ... and after each invoice's last contact, censored at its end
    last_of = np.r_[inv[1:] != inv[:-1], True] if len(inv) else np.zeros(0, bool)
    rows = inv[last_of]
    add_interval(
        rows, rank[last_of] + 1, day[last_of], day[last_of], last[rows], noticed_through[last_of]
    )
    origin = np.where(first_of, FIRST_DAY, prev_day)
    events += np.bincount(
        cell(m_index[inv], stratum[inv], state_of(rank, origin, noticed_before), day - origin),
        minlength=len(events),
    )
    at_risk = np.cumsum(at_risk.reshape(shape), axis=3)[..., :SPAN]
    events = events.reshape(shape)[..., :SPAN]
    hazard = _shrunk_by_month(events, at_risk)

    prev_kind = np.where(first_of, N_KINDS, np.r_[N_KINDS, kind[:-1]])
    kind_counts = np.zeros((months, N_STRATA, MAX_RANK, N_KINDS + 1, N_DAY_BINS, N_KINDS))
    np.add.at(
        kind_counts,
        (m_index[inv], stratum[inv], np.minimum(rank, MAX_RANK - 1), prev_kind, day_bin(day), kind),
        1.0,
    )
    kinds = _shrunk_shares_by_month(kind_counts)
    fee_total = np.bincount(kind, weights=fee_paid, minlength=N_KINDS)
    fee_count = np.bincount(kind, weights=fee_paid > 0, minlength=N_KINDS)
    fee_amount = fee_total / np.maximum(fee_count, 1)
    return LoggingPolicy(first_month, hazard, kinds, fee_amount, len(inv))


def _shrunk_by_month(events: np.ndarray, at_risk: np.ndarray) -> np.ndarray:
    """Hazards per month, each shrunk towards the previous month's (the first month towards
    the stratum's pooled hazard, itself shrunk towards all strata pooled)."""
    pooled_all = events.sum(axis=(0, 1)) / np.maximum(at_risk.sum(axis=(0, 1)), 1e-12)
    pooled = (events.sum(axis=0) + PSEUDO_ACROSS_STRATA * pooled_all) / (
        at_risk.sum(axis=0) + PSEUDO_ACROSS_STRATA
    )
    out = np.empty_like(events)
    prior = pooled
    for m in range(len(events)):
        out[m] = (events[m] + PSEUDO_INVOICES * prior) / (at_risk[m] + PSEUDO_INVOICES)
        prior = out[m]
    return np.clip(out, 0.0, 1.0)


def _shrunk_shares_by_month(counts: np.ndarray) -> np.ndarray:
    pooled_all = counts.sum(axis=(0, 1)) + 1e-9
    pooled_all /= pooled_all.sum(axis=-1, keepdims=True)
    pooled = counts.sum(axis=0) + PSEUDO_ACROSS_STRATA * pooled_all
    pooled /= pooled.sum(axis=-1, keepdims=True)
    out = np.empty_like(counts)
    prior = pooled
    for m in range(len(counts)):
        mixed = counts[m] + PSEUDO_INVOICES * prior
        out[m] = mixed / mixed.sum(axis=-1, keepdims=True)
        prior = out[m]
    return out


def from_history(history: History, as_of: int | None = None) -> LoggingPolicy:
    """The routine as seen on `as_of` (default the history's): invoices issued by then, their
    contacts up to then, each censored at its settlement or at `as_of`."""
    as_of = history.as_of if as_of is None else as_of
    idx = np.flatnonzero(history.issue <= as_of)
    due = history.due[idx].astype(np.int64)
    settled = history.settled[idx].astype(np.int64)
    paid = (history.settled[idx] != NOT_SETTLED) & (settled <= as_of)
    last = np.where(paid, settled, as_of) - due
    contacts = recorded_contacts(history, idx, until=as_of)
    kept = np.flatnonzero((history.act_action < 2) & (history.act_day <= as_of))
    position = np.full(history.size, -1)
    position[idx] = np.arange(len(idx))
    fee_minor = history.act_fee[kept][position[history.act_invoice[kept]] >= 0]
    return estimate(
        due,
        first_day(history.issue[idx], history.due[idx]),
        last,
        stratum_of(history.b2c[idx], history.fee_agreed[idx], history.disputed[idx]),
        contacts,
        fee_minor.astype(np.float64),
    )
