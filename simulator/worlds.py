"""Synthetic worlds with known truth: histories to fit, and the true outcome of any policy.

A world draws debtors (B2B or B2C, a latent class: most pay, some struggle, and in the
`never-pay` world a third group that does not pay at all; the `homogeneous` world has one
kind of debtor only), their invoices (log-normal amounts, e-invoices, disputes), and a logging policy with
randomised timing and channels; then it lets every invoice pay day by day with the world's
own hazard. Because that hazard is known, the expected outcome of *any* policy for the same
invoices follows exactly (`true_outcome`), which is what the tests hold forecasts against.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from simulator.currency import minor_unit_exponent
from simulator.exposure import Contacts, ContactState
from simulator.history import (
    EPOCH,
    INVOICE_COLUMNS,
    INVOICE_FLAGS,
    NOT_SETTLED,
    History,
    day_date,
    day_number,
)
from simulator.model import CHANNELS, DELIVERY_LAG, FIRST_DAY, Layout
from simulator.policy import Policy
from simulator.replay import Rows, first_day, linear_parts, policy_schedule, run

CLASSES = 2  # 0: pays, 1: struggles (with a large negative shift: many never pay)
STRUGGLING_SHIFT = -2.3
NEVER_PAY_SHIFT = -8.0  # a daily hazard of about 1 in 100 000: never, in practice


@dataclass(frozen=True)
class WorldSpec:
    name: str
    b2c_share: float
    struggling_share: tuple[float, float]  # (b2b, b2c)
    invoices_per_debtor: float
    schedule: str  # "randomised" or "fixed"
    due_days: tuple[int, int]  # (b2b, b2c) terms
    amount_log_mean: tuple[float, float]  # log SEK, (b2b, b2c)
    dispute_rate: float = 0.02
    e_invoice_rate: float = 0.4
    fee_agreed_rate: float = 0.7
    split_payment_rate: float = 0.1
    phone_share: float = 0.03
    days: int = 450  # invoices are issued over this many days before the as-of date
    never_pay_share: tuple[float, float] = (0.0, 0.0)  # (b2b, b2c): a third class that never pays
    # The hazard of an invoice no contact has reached yet, 14-29 and 30+ days after it
    # arrived, against its first 14 days (`model.UNCONTACTED_LOWER`): debtors who forget.
    uncontacted_age: tuple[float, float] = (0.0, 0.0)

    @property
    def classes(self) -> int:
        return 3 if max(self.never_pay_share) > 0 else CLASSES


WORLDS = {
    "retail-b2c": WorldSpec(
        "retail-b2c", 0.9, (0.12, 0.22), 3.0, "randomised", (30, 20), (9.6, 6.9)
    ),
    "wholesale-b2b": WorldSpec(
        "wholesale-b2b",
        0.1,
        (0.10, 0.2),
        6.0,
        "randomised",
        (30, 20),
        (10.2, 7.2),
        fee_agreed_rate=0.3,
    ),
    "fixed-calendar": WorldSpec(
        "fixed-calendar", 0.6, (0.12, 0.22), 3.0, "fixed", (30, 20), (9.6, 6.9)
    ),
    # Prompt, struggling and never-paying debtors: class selection must find three.
    "never-pay": WorldSpec(
        "never-pay",
        0.7,
        (0.10, 0.15),
        4.0,
        "randomised",
        (30, 20),
        (9.6, 6.9),
        never_pay_share=(0.04, 0.08),
    ),
    # Debtors forget an invoice nobody reminds them of: a policy that stops contacting (or
    # never starts) leaves invoices older and slower than any contacted history shows.
    "forgetful": WorldSpec(
        "forgetful",
        0.7,
        (0.12, 0.22),
        3.0,
        "randomised",
        (30, 20),
        (9.6, 6.9),
        uncontacted_age=(-0.6, -1.0),
    ),
    # Every debtor alike: class selection must find one.
    "homogeneous": WorldSpec(
        "homogeneous", 0.7, (0.0, 0.0), 4.0, "randomised", (30, 20), (9.6, 6.9)
    ),
}


def true_params(layout: Layout, spec: WorldSpec | None = None) -> np.ndarray:
    """The worlds' behaviour, in the model's own parameter layout."""
    p = np.zeros(layout.size)
    p[layout.alpha] = [-5.6, -4.9, -4.3, -3.3, -1.7, -2.6, -3.1, -3.5, -3.8, -4.2, -4.7, -5.1, -5.7]
    beta = dict(b2c=0.1, log_amount=-0.15, e_invoice=0.25, disputed=-2.0, fee_agreed=0.0)
    for i, value in enumerate(beta.values()):
        p[layout.beta.start + i] = value
    bumps = {
        "email": (0.6, 0.3, 0.1),
        "sms": (0.8, 0.35, 0.1),
        "letter": (0.9, 0.5, 0.2),
        "phone": (1.3, 0.6, 0.2),
    }
    for c, name in enumerate(CHANNELS):
        p[layout.bump.start + 3 * c : layout.bump.start + 3 * c + 3] = bumps[name]
    p[layout.rank] = (-0.3, -0.15, -0.05)
    p[layout.fee] = 0.15
    p[layout.notice] = 0.5
    p[layout.delta] = (STRUGGLING_SHIFT, NEVER_PAY_SHIFT)[: layout.classes - 1]
    if spec is not None:
        p[layout.uncontacted] = spec.uncontacted_age
    return p


@dataclass
class World:
    spec: WorldSpec
    seed: int
    history: History
    debtor_class: np.ndarray  # per debtor
    params: np.ndarray
    layout: Layout

    def true_outcome(
        self,
        policy_of_invoice: list[Policy | None] | Policy | None,
        invoices: np.ndarray,
        horizon: int = 180,
    ) -> dict[str, np.ndarray]:
        """The exact expected settled share by day for these invoices under a policy.

        `policy_of_invoice` is one policy for all, or one per selected invoice.
        """
        h = self.history
        idx = np.asarray(invoices)
        n = len(idx)
        classes = self.debtor_class[h.debtor[idx]]
        amount = np.zeros((n, self.layout.classes))
        amount[np.arange(n), classes] = h.amount[idx]
        count = np.zeros((n, self.layout.classes))
        count[np.arange(n), classes] = 1.0
        from simulator.fit import static_codes

        codes = static_codes(h)[idx]
        policies = (
            policy_of_invoice if isinstance(policy_of_invoice, list) else [policy_of_invoice] * n
        )
        schedule = _schedules(policies, h, idx)
        rows = Rows(codes, first_day(h.issue[idx], h.due[idx]), amount, count, schedule)
        paths = run(self.params, self.layout, rows, horizon)
        return {"days": paths.days, "settled_share": paths.settled_amount[0] / h.amount[idx].sum()}


def _schedules(policies: list[Policy | None], h: History, idx: np.ndarray) -> Contacts:
    parts = []
    by_policy: dict[int, list[int]] = {}
    keep: dict[int, Policy | None] = {}
    for row, policy in enumerate(policies):
        by_policy.setdefault(id(policy), []).append(row)
        keep[id(policy)] = policy
    for key, rows in by_policy.items():
        rows_a = np.array(rows)
        inv = idx[rows_a]
        c = policy_schedule(keep[key], len(rows_a), h.fee_agreed[inv], h.disputed[inv], ~h.b2c[inv])
        parts.append(Contacts(rows_a[c.invoice], c.day, c.channel, c.notice, c.fee))
    return Contacts(
        *(
            np.concatenate([getattr(p, f) for p in parts])
            for f in ("invoice", "day", "channel", "notice", "fee")
        )
    )


def generate(name: str, invoices: int, seed: int, as_of: date = date(2025, 6, 30)) -> World:
    spec = WORLDS[name]
    rng = np.random.default_rng(seed)
    layout = Layout(spec.classes)
    params = true_params(layout, spec)
    n_debtors = max(1, int(invoices / spec.invoices_per_debtor))
    d_b2c = rng.random(n_debtors) < spec.b2c_share
    u = rng.random(n_debtors)
    struggling = np.where(d_b2c, spec.struggling_share[1], spec.struggling_share[0])
    never = np.where(d_b2c, spec.never_pay_share[1], spec.never_pay_share[0])
    d_class = np.where(u < struggling, 1, np.where(u < struggling + never, 2, 0)).astype(np.int64)
    d_e_invoice = rng.random(n_debtors) < spec.e_invoice_rate
    d_fee_agreed = rng.random(n_debtors) < spec.fee_agreed_rate
    debtor = rng.integers(0, n_debtors, invoices)
    b2c = d_b2c[debtor]
    as_of_day = day_number(as_of)
    issue = as_of_day - rng.integers(0, spec.days, invoices)
    due = issue + np.where(b2c, spec.due_days[1], spec.due_days[0])
    log_mean = np.where(b2c, spec.amount_log_mean[1], spec.amount_log_mean[0])
    amount = np.maximum(np.round(np.exp(rng.normal(log_mean, 0.9)) * 100), 100).astype(np.int64)
    disputed = rng.random(invoices) < spec.dispute_rate
    fee_agreed = d_fee_agreed[debtor]
    e_invoice = d_e_invoice[debtor]

    contacts = _logging_schedule(spec, rng, invoices, fee_agreed, disputed, b2c)
    history = History(
        as_of=as_of_day,
        currency="SEK",
        invoice_id=np.array([f"F-{i + 1:07d}" for i in range(invoices)], dtype=object),
        debtor=debtor.astype(np.int32),
        debtor_ids=np.array([f"C-{d:06d}" for d in range(n_debtors)], dtype=object),
        b2c=b2c,
        issue=issue.astype(np.int32),
        due=due.astype(np.int32),
        amount=amount,
        e_invoice=e_invoice,
        disputed=disputed,
        fee_agreed=fee_agreed,
        pay_invoice=np.zeros(0, np.int32),
        pay_day=np.zeros(0, np.int32),
        pay_amount=np.zeros(0, np.int64),
        act_invoice=np.zeros(0, np.int32),
        act_day=np.zeros(0, np.int32),
        act_action=np.zeros(0, np.int8),
        act_channel=np.zeros(0, np.int8),
        act_fee=np.zeros(0, np.int64),
    )
    world = World(spec, seed, history, d_class, params, layout)
    settled_rel = _simulate(world, contacts, rng)
    _record(world, contacts, settled_rel, rng)
    return world


def _logging_schedule(
    spec: WorldSpec,
    rng: np.random.Generator,
    n: int,
    fee_agreed: np.ndarray,
    disputed: np.ndarray,
    b2c: np.ndarray,
) -> Contacts:
    """What the client did while the history was made: randomised, or one fixed calendar."""
    inv, day, channel, notice, fee = [], [], [], [], []
    open_ = np.flatnonzero(~disputed)

    def add(
        rows: np.ndarray, days: np.ndarray, chans: np.ndarray, is_notice: bool, charged: np.ndarray
    ) -> None:
        inv.append(rows)
        day.append(days)
        channel.append(chans)
        notice.append(np.full(len(rows), is_notice))
        fee.append(charged)

    letter, sms, email, phone = (CHANNELS.index(c) for c in ("letter", "sms", "email", "phone"))
    if spec.schedule == "fixed":
        rows = open_
        add(rows, np.full(len(rows), 10), np.full(len(rows), letter), False, fee_agreed[rows])
        add(rows, np.full(len(rows), 24), np.full(len(rows), sms), False, np.zeros(len(rows), bool))
        add(
            rows, np.full(len(rows), 38), np.full(len(rows), letter), True, np.ones(len(rows), bool)
        )
    else:
        pre = open_[rng.random(len(open_)) < 0.3]
        add(pre, np.full(len(pre), -3), np.full(len(pre), email), False, np.zeros(len(pre), bool))
        first = rng.integers(3, 16, len(open_))
        ch = rng.choice([email, sms, letter], size=len(open_), p=[0.4, 0.3, 0.3])
        ch = np.where((~b2c[open_]) & (rng.random(len(open_)) < spec.phone_share * 3), phone, ch)
        ch = np.where(rng.random(len(open_)) < spec.phone_share, phone, ch)
        add(open_, first, ch, False, (ch == letter) & fee_agreed[open_])
        second = first + rng.integers(10, 19, len(open_))
        ch2 = rng.choice([email, sms, letter], size=len(open_), p=[0.3, 0.4, 0.3])
        add(open_, second, ch2, False, np.zeros(len(open_), bool))
        third_rows = rng.random(len(open_)) < 0.5
        third = second + rng.integers(10, 19, len(open_))
        ch3 = rng.choice([email, sms, letter], size=len(open_), p=[0.3, 0.3, 0.4])
        add(
            open_[third_rows],
            third[third_rows],
            ch3[third_rows],
            False,
            np.zeros(third_rows.sum(), bool),
        )
        last = np.where(third_rows, third, second)
        with_notice = rng.random(len(open_)) < 0.7
        notice_day = last + rng.integers(10, 17, len(open_))
        add(
            open_[with_notice],
            notice_day[with_notice],
            np.full(with_notice.sum(), letter),
            True,
            np.ones(with_notice.sum(), bool),
        )
    return Contacts(
        *(
            np.concatenate(x).astype(t)
            for x, t in (
                (inv, np.int64),
                (day, np.int64),
                (channel, np.int64),
                (notice, bool),
                (fee, bool),
            )
        )
    )


def _simulate(world: World, contacts: Contacts, rng: np.random.Generator) -> np.ndarray:
    """Settlement day (relative to due) of every invoice, or NOT_SETTLED by the as-of date."""
    h = world.history
    from simulator.fit import static_codes

    static_eta, time_eta = linear_parts(world.params, world.layout)
    klass = world.debtor_class[h.debtor]
    base = static_eta[0, static_codes(h)]
    start = first_day(h.issue, h.due)
    state = ContactState(h.size, contacts, start, h.disputed)
    last = (h.as_of - h.due).astype(np.int64)
    settled = np.full(h.size, NOT_SETTLED, dtype=np.int64)
    index = np.arange(h.size)
    for t in range(FIRST_DAY, int(last.max()) + 1):
        risk = index[(start <= t) & (last >= t) & (settled == NOT_SETTLED)]
        if not len(risk):
            continue
        eta = base[risk] + time_eta[0, state.codes(risk, np.full(len(risk), t)), klass[risk]]
        pays = rng.random(len(risk)) < 1.0 / (1.0 + np.exp(-eta))
        settled[risk[pays]] = t
    return settled


def _record(
    world: World, contacts: Contacts, settled_rel: np.ndarray, rng: np.random.Generator
) -> None:
    """Payments and the contacts actually made (only while unpaid, only up to the as-of date)."""
    h = world.history
    paid = np.flatnonzero(settled_rel != NOT_SETTLED)
    pay_day = h.due[paid].astype(np.int64) + settled_rel[paid]
    split = rng.random(len(paid)) < world.spec.split_payment_rate
    early = np.maximum(pay_day - rng.integers(1, 11, len(paid)), h.issue[paid])
    part = np.round(h.amount[paid] * rng.uniform(0.3, 0.7, len(paid))).astype(np.int64)
    split &= (early < pay_day) & (part > 0) & (part < h.amount[paid])
    h.pay_invoice = np.concatenate([paid, paid[split]]).astype(np.int32)
    h.pay_day = np.concatenate([pay_day, early[split]]).astype(np.int32)
    h.pay_amount = np.concatenate(
        [np.where(split, h.amount[paid] - part, h.amount[paid]), part[split]]
    )
    sent = h.due[contacts.invoice].astype(np.int64) + contacts.day
    made = (settled_rel[contacts.invoice] >= contacts.day) & (sent <= h.as_of)
    c = contacts.select(made)
    order = np.lexsort((c.day, c.invoice))
    h.act_invoice = c.invoice[order].astype(np.int32)
    h.act_day = (h.due[c.invoice] + c.day)[order].astype(np.int32)
    h.act_action = c.notice[order].astype(np.int8)  # 0 reminder, 1 collection_notice
    h.act_channel = c.channel[order].astype(np.int8)
    fee_value = np.where(c.notice, 18_000, 6_000)
    h.act_fee = np.where(c.fee, fee_value, 0)[order].astype(np.int64)
    h.__post_init__()


def write(world: World, out: str | Path, currency: str = "SEK") -> None:
    """The history as formats §1 CSV files, and the truth beside them (truth.json).

    Amounts are the world's minor units written in `currency` (its ISO 4217 exponent
    places the decimal point: 12345 is 123.45 SEK or USD, 12345 JPY).
    """
    exponent = minor_unit_exponent(currency)

    def _money(minor: int) -> str:
        return money_text(minor, exponent)

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    h = world.history
    dates = {
        d: day_date(d).isoformat() for d in np.unique(np.r_[h.issue, h.due, h.pay_day, h.act_day])
    }
    with (folder / "invoices.csv").open("w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow([*INVOICE_COLUMNS, *INVOICE_FLAGS])
        flags = ("false", "true")
        w.writerows(
            (
                h.invoice_id[i],
                h.debtor_ids[h.debtor[i]],
                "b2c" if h.b2c[i] else "b2b",
                dates[h.issue[i]],
                dates[h.due[i]],
                _money(h.amount[i]),
                currency,
                flags[int(h.e_invoice[i])],
                flags[int(h.disputed[i])],
                flags[int(h.fee_agreed[i])],
            )
            for i in range(h.size)
        )
    with (folder / "payments.csv").open("w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["invoice_id", "paid_date", "amount"])
        w.writerows(
            (h.invoice_id[i], dates[d], _money(a))
            for i, d, a in zip(h.pay_invoice, h.pay_day, h.pay_amount, strict=True)
        )
    with (folder / "actions.csv").open("w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["invoice_id", "date", "action", "channel", "fee"])
        actions = ("reminder", "collection_notice")
        w.writerows(
            (h.invoice_id[i], dates[d], actions[a], CHANNELS[c], _money(f))
            for i, d, a, c, f in zip(
                h.act_invoice, h.act_day, h.act_action, h.act_channel, h.act_fee, strict=False
            )
        )
    truth = {
        "world": world.spec.name,
        "seed": world.seed,
        "as_of": day_date(h.as_of).isoformat(),
        "parameters": dict(zip(world.layout.names(), world.params.round(6).tolist(), strict=True)),
        "class_of_debtor": {
            str(d): int(k) for d, k in zip(h.debtor_ids, world.debtor_class, strict=True)
        },
        "delivery_lag_days": dict(zip(CHANNELS, DELIVERY_LAG.tolist(), strict=True)),
        "epoch": EPOCH.isoformat(),
    }
    (folder / "truth.json").write_text(json.dumps(truth, indent=1))


def money_text(minor: int, exponent: int) -> str:
    """Minor units as a plain decimal in major units with exactly `exponent` decimals."""
    if exponent == 0:
        return str(int(minor))
    unit = 10**exponent
    return f"{minor // unit}.{minor % unit:0{exponent}d}"
