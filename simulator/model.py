"""The payment-behaviour model's layout: days, covariate codes and the parameter vector.

The daily settlement hazard of an unpaid invoice is

    logit h = α[bin(t)] + x·β + bump[channel, window, rank] + φ·fee_charged + ψ·notice_sent + δ[class]
              + γ[class]·(contact window, later contact, fee charged, notice sent)

(γ: each class's own deviation from the shared contact effects, when the layout has them).

with t the day relative to the due date. Everything an invoice-day's hazard depends on is
folded into two small integer codes: a *static* code (the invoice's covariates, binned)
and a *time* code (baseline bin, the most recent contact's channel, window and rank, fee
and notice state). The fit and the forecast work on these codes, never on invoice-day rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.defaults import AMOUNT_BINS, TENURE_DAYS

CHANNELS = ("email", "sms", "letter", "phone")
# Days from sending to the debtor having it (letters travel).
DELIVERY_LAG = np.array([0, 0, 2, 0], dtype=np.int64)

# Baseline: piecewise constant on these bins of t (lower bounds; the last runs on).
BIN_LOWER = np.array([-60, -14, -7, -1, 0, 1, 3, 7, 14, 30, 60, 90, 120], dtype=np.int64)
BIN_NAMES = (
    "<-14",
    "-14..-8",
    "-7..-2",
    "-1",
    "0",
    "1..2",
    "3..6",
    "7..13",
    "14..29",
    "30..59",
    "60..89",
    "90..119",
    "120+",
)
FIRST_DAY = -60  # earlier days count as day -60

# A contact's bump, by days since delivery: windows [0,3), [3,7), [7,14); none after.
WINDOW_LOWER = np.array([0, 3, 7], dtype=np.int64)
BUMP_DAYS = 14
# A charged fee and a collection notice act for this many days from the charge (the notice's
# delivery), then no longer: a step that lasted until payment would, like a bump that never
# fades, absorb the selection of the harder payers among those still unpaid long after it.
STEP_DAYS = 30
WINDOW_NAMES = ("0..2", "3..6", "7..13")
# The age of an invoice no contact has reached yet: days since it arrived (its first day at
# risk), in levels from these lower bounds; level 0 is the reference and a contact's
# delivery ends the clock for good. A debtor who noticed an invoice on arrival forgets it,
# so an invoice nobody has reminded of pays less the older it is, and a policy that
# contacts late or never leaves it so. The clock is measured where it runs in any history:
# before due, and between due and the first contact, with invoices of different terms and
# routines that contact on different days; its last level holds beyond (attention settles).
# It stops at the first contact rather than running again from each one: a clock from the
# latest contact lasts until payment among the contacted, where it takes up the selection
# of the hard payers still unpaid long after their reminders, as a lasting bump does
# (measured on payday_world: its own 'since the latest contact' levels came out at -1.0 and
# -1.5, the held-out likelihood fell by 140 and the backtests' error rose 1.11 -> 1.50 pp).
# Disputed invoices wait for the dispute, not for attention: no clock (their late payments
# on settlement would otherwise read as old invoices paying well).
UNCONTACTED_LOWER = np.array([0, 14, 30], dtype=np.int64)
UNCONTACTED_NAMES = ("0..13", "14..29", "30+")
N_AGES = len(UNCONTACTED_LOWER)
RANKS = ("first", "later")

# Static covariates, binned so that invoices share codes. Amount bins are quantiles of the
# history's own amounts (`amount_edges`), so the amount covariate is the bin's rank,
# centred: the same scale in any currency.
AMOUNT_CENTRES = (np.arange(AMOUNT_BINS) - (AMOUNT_BINS - 1) / 2) / 2.0
# The debtor's record on the invoice's issue date (history.debtor_record): its first
# invoice; a recent debtor; established (first invoice TENURE_DAYS or more before); or in
# arrears (an earlier invoice long overdue and unpaid), whatever else holds.
HISTORY = ("first", "recent", "established", "in_arrears")

N_BINS = len(BIN_LOWER)
N_WINDOWS = len(WINDOW_LOWER)
N_CONTACT_CODES = 1 + len(CHANNELS) * N_WINDOWS * len(RANKS)
N_TIME_CODES = N_BINS * N_CONTACT_CODES * 2 * 2 * N_AGES
N_AMOUNT = len(AMOUNT_CENTRES)
N_STATIC_CODES = 2 * N_AMOUNT * 2 * 2 * 2 * len(HISTORY)

STATIC_FEATURES = (
    "b2c",
    "log_amount",
    "e_invoice",
    "disputed",
    "fee_agreed",
    "history_recent",
    "history_established",
    "history_in_arrears",
    # The amount's slope for consumers, beside the one for companies: a consumer short of
    # money waits for the next pay day with a large invoice, a company's payment run takes
    # large and small alike, so one shared slope misjudges both (measured on payday_world:
    # the in-sample replay of large B2B invoices 4 pp low at 30 days with one slope).
    "b2c_log_amount",
)


# A class's own response to contacts, as deviations from the shared effects: the bump by
# window (whatever the channel), the later-contact damping by window, a charged fee and a
# collection notice. Per window and not per channel × window: a debtor who reacts strongly
# reacts to any channel, and the class × channel cells are too thin to estimate.
#
# And a class's own baseline shape, on coarse groups of day bins against days 1..59 (a
# class whose level is carried by its shift can still pay more around the due date and
# less later, or the reverse: organised payers and those waiting for money differ so). Days
# 1..59 carry no shape of their own: that is where contacts act, and a class's own shape
# there would absorb its contact effects (measured: the 'no contacts' forecast went wrong).
SHAPE_GROUPS = np.array([0, 0, 0, 0, 1, -1, -1, -1, -1, -1, -1, -1, -1])  # per day bin
SHAPE_NAMES = ("before_due", "due_day")
CLASS_CONTACT_NAMES = (
    *(f"bump[{w}]" for w in WINDOW_NAMES),
    *(f"later_contact[{w}]" for w in WINDOW_NAMES),
    "fee_charged",
    "collection_notice",
    *(f"baseline[{g}]" for g in SHAPE_NAMES),
)


@dataclass(frozen=True)
class Layout:
    """Where each parameter group sits in the parameter vector, for `classes` latent classes.

    With `class_contacts` (and more than one class) every class also has its own deviation
    from the shared contact effects (`CLASS_CONTACT_NAMES`), all classes alike (class 0 too),
    each shrunk towards zero by its prior: the shared effect is what the classes have in
    common, and a thin class borrows it.
    """

    classes: int = 2
    class_contacts: bool = False

    @property
    def alpha(self) -> slice:
        return slice(0, N_BINS)

    @property
    def beta(self) -> slice:
        start = N_BINS
        return slice(start, start + len(STATIC_FEATURES))

    @property
    def bump(self) -> slice:
        start = self.beta.stop
        return slice(start, start + len(CHANNELS) * N_WINDOWS)

    @property
    def rank(self) -> slice:
        start = self.bump.stop
        return slice(start, start + N_WINDOWS)

    @property
    def fee(self) -> int:
        return self.rank.stop

    @property
    def notice(self) -> int:
        return self.fee + 1

    @property
    def uncontacted(self) -> slice:
        return slice(self.notice + 1, self.notice + N_AGES)

    @property
    def delta(self) -> slice:
        return slice(self.uncontacted.stop, self.uncontacted.stop + self.classes - 1)

    @property
    def has_class_contacts(self) -> bool:
        return self.class_contacts and self.classes > 1

    @property
    def class_contact(self) -> slice:
        """Class k's deviations: `class_contact_of(k)`; all classes, class-major."""
        width = len(CLASS_CONTACT_NAMES) * self.classes if self.has_class_contacts else 0
        return slice(self.delta.stop, self.delta.stop + width)

    def class_contact_of(self, k: int) -> slice:
        start = self.class_contact.start + k * len(CLASS_CONTACT_NAMES)
        return slice(start, start + len(CLASS_CONTACT_NAMES))

    @property
    def size(self) -> int:
        return self.class_contact.stop

    def names(self) -> list[str]:
        names = [f"baseline[{b}]" for b in BIN_NAMES]
        names += [f"beta[{f}]" for f in STATIC_FEATURES]
        names += [f"bump[{c},{w}]" for c in CHANNELS for w in WINDOW_NAMES]
        names += [f"later_contact[{w}]" for w in WINDOW_NAMES]
        names += ["fee_charged", "collection_notice"]
        names += [f"uncontacted[{a}]" for a in UNCONTACTED_NAMES[1:]]
        names += [f"class_shift[{k}]" for k in range(1, self.classes)]
        if self.has_class_contacts:
            names += [
                f"class_effect[{k},{n}]" for k in range(self.classes) for n in CLASS_CONTACT_NAMES
            ]
        return names


def day_bin(t: np.ndarray) -> np.ndarray:
    return np.searchsorted(BIN_LOWER, np.maximum(t, FIRST_DAY), side="right") - 1


def contact_code(channel: np.ndarray, since: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """0 when no bump applies (no contact, or delivered ≥ 14 days ago, or not yet delivered)."""
    active = (channel >= 0) & (since >= 0) & (since < BUMP_DAYS)
    window = np.searchsorted(WINDOW_LOWER, np.clip(since, 0, None), side="right") - 1
    later = (rank > 0).astype(np.int64)
    code = 1 + (np.clip(channel, 0, None) * N_WINDOWS + window) * len(RANKS) + later
    return np.where(active, code, 0)


def uncontacted_age(days: np.ndarray) -> np.ndarray:
    """The level of an uncontacted invoice `days` after its arrival."""
    return np.searchsorted(UNCONTACTED_LOWER, np.clip(days, 0, None), side="right") - 1


def time_code(
    t: np.ndarray, contact: np.ndarray, fee: np.ndarray, notice: np.ndarray, age: np.ndarray
) -> np.ndarray:
    return (
        ((day_bin(t) * N_CONTACT_CODES + contact) * 2 + fee.astype(np.int64)) * 2
        + notice.astype(np.int64)
    ) * N_AGES + age


def amount_edges(amount: np.ndarray) -> np.ndarray:
    """Inner edges of AMOUNT_BINS equally filled bins of the log amounts."""
    levels = np.arange(1, AMOUNT_BINS) / AMOUNT_BINS
    return np.quantile(np.log(np.maximum(amount, 1)), levels)


def static_code(
    b2c: np.ndarray,
    amount: np.ndarray,
    e_invoice: np.ndarray,
    disputed: np.ndarray,
    fee_agreed: np.ndarray,
    history: np.ndarray,
    edges: np.ndarray,
) -> np.ndarray:
    """`edges` from `amount_edges` of the whole history the codes are for."""
    amount_bin = np.searchsorted(edges, np.log(np.maximum(amount, 1)), side="right")
    code = history.astype(np.int64)
    for flag in (fee_agreed, disputed, e_invoice):
        code = code * 2 + flag.astype(np.int64)
    code = code * N_AMOUNT + amount_bin
    return code * 2 + b2c.astype(np.int64)


def history_class(issued_before: np.ndarray, overdue: np.ndarray, tenure: np.ndarray) -> np.ndarray:
    """first / recent / established / in arrears from `history.debtor_record`."""
    cls = np.where(tenure >= TENURE_DAYS, 2, 1)
    cls = np.where(issued_before > 0, cls, 0)
    return np.where(overdue > 0, 3, cls)


def disputed_of(static: np.ndarray) -> np.ndarray:
    """Whether each static code is a disputed invoice's (`static_code`'s layout)."""
    return (static // (2 * N_AMOUNT * 2)) % 2 == 1


def static_design() -> np.ndarray:
    """The static feature row of every static code (N_STATIC_CODES × features)."""
    codes = np.arange(N_STATIC_CODES)
    b2c = codes % 2
    rest = codes // 2
    amount_bin = rest % N_AMOUNT
    rest //= N_AMOUNT
    e_invoice = rest % 2
    rest //= 2
    disputed = rest % 2
    rest //= 2
    fee_agreed = rest % 2
    history = rest // 2
    return np.column_stack(
        [
            b2c,
            AMOUNT_CENTRES[amount_bin],
            e_invoice,
            disputed,
            fee_agreed,
            history == 1,
            history == 2,
            history == 3,
            b2c * AMOUNT_CENTRES[amount_bin],
        ]
    ).astype(np.float64)


def time_design(layout: Layout) -> np.ndarray:
    """The time-varying part of the design for every time code (N_TIME_CODES × params)."""
    codes = np.arange(N_TIME_CODES)
    age = codes % N_AGES
    rest = codes // N_AGES
    notice = rest % 2
    fee = (rest // 2) % 2
    contact = (rest // 4) % N_CONTACT_CODES
    bin_ = rest // (4 * N_CONTACT_CODES)
    design = np.zeros((N_TIME_CODES, layout.size))
    design[codes, layout.alpha.start + bin_] = 1.0
    has = contact > 0
    index = contact - 1
    later = index % len(RANKS)
    window = (index // len(RANKS)) % N_WINDOWS
    channel = index // (len(RANKS) * N_WINDOWS)
    rows = codes[has]
    design[rows, layout.bump.start + channel[has] * N_WINDOWS + window[has]] = 1.0
    later_rows = has & (later == 1)
    design[codes[later_rows], layout.rank.start + window[later_rows]] = 1.0
    design[:, layout.fee] = fee
    design[:, layout.notice] = notice
    aged = age > 0
    design[codes[aged], layout.uncontacted.start + age[aged] - 1] = 1.0
    return design


def class_time_design(layout: Layout) -> np.ndarray:
    """The time-varying part of the design per class (classes × N_TIME_CODES × params):
    `time_design`, the class's shift column, and its own contact-deviation columns."""
    shared = time_design(layout)
    out = np.repeat(shared[None], layout.classes, axis=0)
    for k in range(1, layout.classes):
        out[k, :, layout.delta.start + k - 1] = 1.0
    if layout.has_class_contacts:
        bump = shared[:, layout.bump].reshape(N_TIME_CODES, len(CHANNELS), N_WINDOWS).sum(axis=1)
        bin_ = np.arange(N_TIME_CODES) // (4 * N_CONTACT_CODES * N_AGES)
        group = SHAPE_GROUPS[bin_]
        shape = (group[:, None] == np.arange(len(SHAPE_NAMES))[None, :]).astype(np.float64)
        columns = np.column_stack(
            [bump, shared[:, layout.rank], shared[:, layout.fee], shared[:, layout.notice], shape]
        )
        for k in range(layout.classes):
            out[k, :, layout.class_contact_of(k)] = columns
    return out
