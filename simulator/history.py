"""A client's payment history (formats §1) as columnar numpy arrays.

`load_history(directory)` reads invoices.csv, payments.csv and (optionally) actions.csv,
checks every row, and either returns a `History` or raises `HistoryError` listing every
problem by file, line and column; nothing is half-loaded. Days are integers counted from
1970-01-01 (numpy `datetime64[D]` as int), money is int64 minor units.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

from simulator.columns import Columns, key_words, read_columns, strings
from simulator.currency import UnknownCurrency, minor_unit_exponent
from simulator.defaults import OVERDUE_DAYS

DEBTOR_TYPES = ("b2b", "b2c")
ACTIONS = ("reminder", "collection_notice", "escalation")
CHANNELS = ("email", "sms", "letter", "phone")
NO_CHANNEL = -1
NOT_SETTLED = np.iinfo(np.int32).max
# Beyond this many problems the rest are counted, not listed.
MAX_LISTED_PROBLEMS = 1000
EPOCH = date(1970, 1, 1)
# Amounts stay far inside int64 minor units (this is 10^16 in major units).
MAX_MINOR_UNITS = 10**18


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    column: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" + (f" column {self.column}" if self.column else "")
        return f"{where}: {self.message}"


class HistoryError(ValueError):
    def __init__(self, problems: list[Problem], more: int = 0) -> None:
        self.problems = problems
        self.more = more
        lines = [str(p) for p in problems] + ([f"... and {more} more"] if more else [])
        super().__init__("\n".join(lines))


@dataclass
class History:
    as_of: int  # day number
    currency: str
    invoice_id: np.ndarray  # str
    debtor: np.ndarray  # int32 index into debtor_ids
    debtor_ids: np.ndarray  # str
    b2c: np.ndarray  # bool
    issue: np.ndarray  # int32 day
    due: np.ndarray  # int32 day
    amount: np.ndarray  # int64 minor units
    e_invoice: np.ndarray  # bool
    disputed: np.ndarray  # bool
    fee_agreed: np.ndarray  # bool
    pay_invoice: np.ndarray  # int32 index into invoices
    pay_day: np.ndarray  # int32
    pay_amount: np.ndarray  # int64
    act_invoice: np.ndarray  # int32
    act_day: np.ndarray  # int32
    act_action: np.ndarray  # int8 index into ACTIONS
    act_channel: np.ndarray  # int8 index into CHANNELS, NO_CHANNEL for escalation
    act_fee: np.ndarray  # int64
    settled: np.ndarray = field(
        init=False
    )  # int32 day the payments reach the amount, else NOT_SETTLED

    def __post_init__(self) -> None:
        self.settled = settlement_days(self.amount, self.pay_invoice, self.pay_day, self.pay_amount)

    @property
    def size(self) -> int:
        return len(self.amount)

    def subset(self, invoices: np.ndarray) -> History:
        """The history of these invoices only (their payments and actions with them), as of
        the same day; debtors keep their numbers."""
        keep = np.asarray(invoices)
        position = np.full(self.size, -1, dtype=np.int64)
        position[keep] = np.arange(len(keep))
        pay = position[self.pay_invoice] >= 0
        act = position[self.act_invoice] >= 0
        return History(
            as_of=self.as_of,
            currency=self.currency,
            invoice_id=self.invoice_id[keep],
            debtor=self.debtor[keep],
            debtor_ids=self.debtor_ids,
            b2c=self.b2c[keep],
            issue=self.issue[keep],
            due=self.due[keep],
            amount=self.amount[keep],
            e_invoice=self.e_invoice[keep],
            disputed=self.disputed[keep],
            fee_agreed=self.fee_agreed[keep],
            pay_invoice=position[self.pay_invoice[pay]].astype(np.int32),
            pay_day=self.pay_day[pay],
            pay_amount=self.pay_amount[pay],
            act_invoice=position[self.act_invoice[act]].astype(np.int32),
            act_day=self.act_day[act],
            act_action=self.act_action[act],
            act_channel=self.act_channel[act],
            act_fee=self.act_fee[act],
        )

    @property
    def exponent(self) -> int:
        """Decimals of the currency's minor unit (ISO 4217): amounts are integers of 10^-exponent."""
        return minor_unit_exponent(self.currency)


def canonical(history: History) -> History:
    """The same history in one order whatever order its rows came in: invoices by (due day,
    invoice id), debtors numbered by first appearance in that order, payments and contacts
    by (invoice, day). The fit is then a function of the data alone, so a history read from
    files and the same history read from the service's book give the same model and the
    same forecast to the last digit."""
    order = np.lexsort((history.invoice_id.astype(str), history.due))
    ordered = history.subset(order)
    codes, debtor_ids = _first_seen_codes(ordered.debtor)
    pay = np.lexsort((ordered.pay_amount, ordered.pay_day, ordered.pay_invoice))
    act = np.lexsort(
        (
            ordered.act_fee,
            ordered.act_channel,
            ordered.act_action,
            ordered.act_day,
            ordered.act_invoice,
        )
    )
    return History(
        as_of=ordered.as_of,
        currency=ordered.currency,
        invoice_id=ordered.invoice_id,
        debtor=codes.astype(np.int32),
        debtor_ids=history.debtor_ids[debtor_ids],
        b2c=ordered.b2c,
        issue=ordered.issue,
        due=ordered.due,
        amount=ordered.amount,
        e_invoice=ordered.e_invoice,
        disputed=ordered.disputed,
        fee_agreed=ordered.fee_agreed,
        pay_invoice=ordered.pay_invoice[pay],
        pay_day=ordered.pay_day[pay],
        pay_amount=ordered.pay_amount[pay],
        act_invoice=ordered.act_invoice[act],
        act_day=ordered.act_day[act],
        act_action=ordered.act_action[act],
        act_channel=ordered.act_channel[act],
        act_fee=ordered.act_fee[act],
    )


def day_number(value: date) -> int:
    return (value - EPOCH).days


def day_date(number: int) -> date:
    return date.fromordinal(EPOCH.toordinal() + int(number))


def settlement_days(
    amount: np.ndarray, pay_invoice: np.ndarray, pay_day: np.ndarray, pay_amount: np.ndarray
) -> np.ndarray:
    """Day each invoice's payments, in date order, first reach its amount."""
    settled = np.full(len(amount), NOT_SETTLED, dtype=np.int32)
    if len(pay_invoice) == 0:
        return settled
    order = np.lexsort((pay_day, pay_invoice))
    invoice, day, paid = pay_invoice[order], pay_day[order], pay_amount[order]
    running = np.cumsum(paid)
    starts = np.r_[0, np.flatnonzero(np.diff(invoice)) + 1]
    before = np.repeat(np.r_[0, running[starts[1:] - 1]], np.diff(np.r_[starts, len(invoice)]))
    reached = (running - before) >= amount[invoice]
    hits = np.flatnonzero(reached)
    if len(hits):
        first = np.unique(invoice[hits], return_index=True)
        settled[first[0]] = day[hits[first[1]]]
    return settled


def debtor_record(history: History) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per invoice, what was known of its debtor on its issue date, in terms whose meaning
    does not change with how long the history is: (invoices issued before, invoices then
    more than OVERDUE_DAYS past due and unpaid, days since the debtor's first invoice).

    "No settled invoice yet" meant a new debtor early in a history and a never-payer late
    in it; these three mean the same on any day. No look-ahead: an earlier invoice counts
    as unpaid on the issue date unless it was settled before that day.
    """
    span = np.int64(1 << 32)
    debtor = history.debtor.astype(np.int64) * span
    issue = history.issue.astype(np.int64)
    due = history.due.astype(np.int64)
    settled = history.settled.astype(np.int64)

    # Lookups with needles in sorted order: random needles into a sorted array of a million
    # keys miss the cache on every probe (1.1 s of a forecast's 2.3 s at 300 000 invoices).
    by_key = np.argsort(debtor + issue, kind="stable")

    def ordered(keys: np.ndarray, needles: np.ndarray, side: str) -> np.ndarray:
        out = np.empty(len(needles), dtype=np.int64)
        out[by_key] = np.searchsorted(keys, needles[by_key], side=side)  # type: ignore[call-overload]
        return out

    def earlier(days: np.ndarray, at: np.ndarray, keep: np.ndarray, side: str) -> np.ndarray:
        keys = np.sort((debtor + days)[keep])
        return ordered(keys, debtor + at, side) - ordered(keys, debtor, "left")

    everyone = np.ones(history.size, dtype=bool)
    issued_before = earlier(issue, issue, everyone, "left")
    overdue_from = due + OVERDUE_DAYS + 1
    spell = overdue_from <= settled  # an interval [overdue_from, settled] in arrears
    overdue = earlier(overdue_from, issue, spell, "right") - earlier(settled, issue, spell, "left")
    first = np.full(len(history.debtor_ids), np.iinfo(np.int64).max)
    np.minimum.at(first, history.debtor.astype(np.int64), issue)
    tenure = issue - first[history.debtor]
    return issued_before.astype(np.int32), overdue.astype(np.int32), tenure.astype(np.int32)


class _Collector:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.more = 0

    def add(self, file: str, line: int, column: str, message: str) -> None:
        if len(self.problems) < MAX_LISTED_PROBLEMS:
            self.problems.append(Problem(file, line, column, message))
        else:
            self.more += 1


def _rows(
    path: Path, required: tuple[str, ...], optional: tuple[str, ...], problems: _Collector
) -> Iterator[tuple[int, dict[str, str]]]:
    name = path.name
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        problems.add(name, 0, "", f"cannot be read: {exc.strerror}")
        return
    with handle:
        reader = csv.reader(handle)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            problems.add(name, 1, "", "the file is empty: a header row is required")
            return
        except UnicodeDecodeError:
            problems.add(name, 1, "", "not UTF-8 text")
            return
        missing = [c for c in required if c not in header]
        for column in missing:
            problems.add(name, 1, column, "required column is missing")
        for column in header:
            if column not in required and column not in optional:
                problems.add(name, 1, column, "unknown column")
        if missing:
            return
        width = len(header)
        try:
            for line, values in enumerate(reader, start=2):
                if not values or values == [""]:
                    continue
                if len(values) != width:
                    problems.add(name, line, "", f"expected {width} fields, found {len(values)}")
                    continue
                yield line, dict(zip(header, values, strict=True))
        except UnicodeDecodeError:
            problems.add(name, 0, "", "not UTF-8 text")
        except csv.Error as exc:
            problems.add(name, reader.line_num, "", f"malformed CSV: {exc}")


class _Parsers:
    """Field parsers with caches: a history repeats the same few thousand dates endlessly."""

    def __init__(self, problems: _Collector) -> None:
        self.problems = problems
        self.dates: dict[str, int] = {}

    def day(self, file: str, line: int, column: str, text: str) -> int | None:
        cached = self.dates.get(text)
        if cached is not None:
            return cached
        try:
            value = day_number(date.fromisoformat(text.strip()))
        except ValueError:
            self.problems.add(file, line, column, f"not a date (YYYY-MM-DD): {text!r}")
            return None
        self.dates[text] = value
        return value

    def money(
        self, file: str, line: int, column: str, text: str, positive: bool, exponent: int
    ) -> int | None:
        """Decimal major units ('1234.50') to integer minor units, exactly: at most as many
        decimals as the currency's minor unit has (`exponent`, ISO 4217: JPY 0, SEK 2)."""
        raw = text.strip()
        whole, dot, frac = raw.partition(".")
        sign = -1 if whole.startswith("-") else 1
        digits = whole.lstrip("-+")
        if not digits.isdigit() or (dot and not frac.isdigit()) or len(frac) > exponent:
            allowed = "no decimals" if exponent == 0 else f"at most {exponent} decimals"
            self.problems.add(file, line, column, f"not an amount with {allowed}: {text!r}")
            return None
        value = sign * (int(digits) * 10**exponent + int(frac.ljust(exponent, "0") or 0))
        if abs(value) >= MAX_MINOR_UNITS:
            self.problems.add(file, line, column, f"too large an amount: {text!r}")
            return None
        if positive and value <= 0:
            self.problems.add(file, line, column, f"must be greater than 0: {text!r}")
            return None
        if value < 0:
            self.problems.add(file, line, column, f"must not be negative: {text!r}")
            return None
        return value

    def flag(self, file: str, line: int, column: str, text: str) -> bool:
        value = text.strip().lower()
        if value in ("true", "1", "yes"):
            return True
        if value not in ("false", "0", "no", ""):
            self.problems.add(file, line, column, f"must be true or false: {text!r}")
        return False


def _exponent(currency: str) -> int | None:
    if len(currency) != 3 or not currency.isalpha():
        return None
    try:
        return minor_unit_exponent(currency)
    except UnknownCurrency:
        return None


def load_history(directory: str | Path, as_of: date | None = None) -> History:
    folder = Path(directory)
    if not folder.is_dir():
        raise HistoryError([Problem(str(folder), 0, "", "not a directory")])
    fast = _load_clean(folder, as_of)
    return fast if fast is not None else _load_checked(folder, as_of)


INVOICE_COLUMNS = (
    "invoice_id",
    "debtor_id",
    "debtor_type",
    "issue_date",
    "due_date",
    "amount",
    "currency",
)
INVOICE_FLAGS = ("e_invoice", "disputed", "fee_agreed")
PAYMENT_COLUMNS = ("invoice_id", "paid_date", "amount")
ACTION_COLUMNS = ("invoice_id", "date", "action", "channel", "fee")
_FLAG_TEXT = ("false", "", "true")  # code 2 is true


def _flags(columns: Columns, name: str) -> np.ndarray | None:
    if name not in columns:
        return np.zeros(columns.rows, dtype=bool)
    codes = columns.codes(name, _FLAG_TEXT)
    return None if codes is None else codes == 2


def _positions(keys: np.ndarray, sorted_keys: np.ndarray, rows: np.ndarray) -> np.ndarray | None:
    """Row of each key in a table of unique sorted keys, or None if any is absent."""
    if len(sorted_keys) == 0:
        return None if len(keys) else np.zeros(0, dtype=np.int64)
    found = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    if (sorted_keys[found] != keys).any():
        return None
    return rows[found]


def _first_seen_codes(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes numbering distinct keys in order of first appearance, and the keys in that order."""
    distinct, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[inverse.ravel()], distinct[order]


def _load_clean(folder: Path, as_of: date | None) -> History | None:
    """The fast path for a clean history, on byte columns in numpy. Anything irregular
    returns None, and the row-by-row path then names every problem exactly."""
    inv = read_columns(folder / "invoices.csv", INVOICE_COLUMNS, INVOICE_FLAGS)
    pay = read_columns(folder / "payments.csv", PAYMENT_COLUMNS, ())
    act_path = folder / "actions.csv"
    act = read_columns(act_path, ACTION_COLUMNS, ()) if act_path.exists() else None
    if inv is None or pay is None or (act is None and act_path.exists()) or inv.rows == 0:
        return None
    ids = inv.keys("invoice_id")
    debtor_keys = inv.keys("debtor_id")
    kind = inv.codes("debtor_type", DEBTOR_TYPES)
    currency_codes = inv.keys("currency")
    if ids is None or debtor_keys is None or kind is None or currency_codes is None:
        return None
    currency = strings(currency_codes[:1])[0]
    if (
        (currency_codes != currency_codes[0]).any()
        or len(currency) != 3
        or not (currency.isascii() and currency.isalpha() and currency.isupper())
    ):
        return None
    try:
        exponent = minor_unit_exponent(currency)
    except UnknownCurrency:
        return None
    sorted_ids, id_rows = np.unique(ids, return_index=True)
    if len(sorted_ids) != inv.rows:
        return None  # a duplicate invoice_id
    issue, due = inv.days("issue_date"), inv.days("due_date")
    amount = inv.minor_units("amount", exponent)
    e_invoice, disputed, fee_agreed = (_flags(inv, name) for name in INVOICE_FLAGS)
    if e_invoice is None or disputed is None or fee_agreed is None:
        return None
    if issue is None or due is None or amount is None or (due < issue).any() or (amount <= 0).any():
        return None
    debtor, debtor_ids = _first_seen_codes(debtor_keys)

    pay_keys = pay.keys("invoice_id", key_words(ids))
    pay_invoice = None if pay_keys is None else _positions(pay_keys, sorted_ids, id_rows)
    pay_day = pay.days("paid_date")
    pay_amount = pay.minor_units("amount", exponent)
    if pay_invoice is None or pay_day is None or pay_amount is None or (pay_amount <= 0).any():
        return None
    if act is not None:
        act_keys = act.keys("invoice_id", key_words(ids))
        act_invoice = None if act_keys is None else _positions(act_keys, sorted_ids, id_rows)
        act_day = act.days("date")
        act_fee = act.minor_units("fee", exponent, empty_is_zero=True)
        action = act.codes("action", ACTIONS)
        channel = act.codes("channel", (*CHANNELS, ""))
        if act_invoice is None or act_day is None or act_fee is None:
            return None
        if action is None or channel is None:
            return None
        channel[channel == len(CHANNELS)] = NO_CHANNEL
        escalation = action == ACTIONS.index("escalation")
        if ((channel == NO_CHANNEL) != escalation).any():
            return None
    else:
        act_invoice = act_day = act_fee = np.zeros(0, dtype=np.int64)
        action = channel = np.zeros(0, dtype=np.int8)
    latest = int(max(issue.max(), pay_day.max(initial=0), act_day.max(initial=0)))
    as_of_day = day_number(as_of) if as_of is not None else latest
    if (pay_day > as_of_day).any() or (act_day > as_of_day).any():
        return None
    return History(
        as_of=as_of_day,
        currency=currency,
        invoice_id=strings(ids),
        debtor=debtor.astype(np.int32),
        debtor_ids=strings(debtor_ids),
        b2c=kind == DEBTOR_TYPES.index("b2c"),
        issue=issue.astype(np.int32),
        due=due.astype(np.int32),
        amount=amount,
        e_invoice=e_invoice,
        disputed=disputed,
        fee_agreed=fee_agreed,
        pay_invoice=pay_invoice.astype(np.int32),
        pay_day=pay_day.astype(np.int32),
        pay_amount=pay_amount,
        act_invoice=act_invoice.astype(np.int32),
        act_day=act_day.astype(np.int32),
        act_action=action,
        act_channel=channel,
        act_fee=act_fee,
    )


def _load_checked(folder: Path, as_of: date | None) -> History:
    """Row by row, collecting every problem with its file, line and column."""
    problems = _Collector()
    parse = _Parsers(problems)

    ids: list[str] = []
    index: dict[str, int] = {}
    debtors: dict[str, int] = {}
    debtor, b2c, issue, due, amount, e_inv, disputed, fee_agreed = [], [], [], [], [], [], [], []
    currencies: dict[str, int] = {}
    name = "invoices.csv"
    for line, row in _rows(folder / name, INVOICE_COLUMNS, INVOICE_FLAGS, problems):
        invoice_id = row["invoice_id"].strip()
        if not invoice_id:
            problems.add(name, line, "invoice_id", "required")
        elif invoice_id in index:
            problems.add(
                name,
                line,
                "invoice_id",
                f"duplicate invoice_id {invoice_id!r} (first on line {index[invoice_id] + 2})",
            )
        kind = row["debtor_type"].strip().lower()
        if kind not in DEBTOR_TYPES:
            problems.add(name, line, "debtor_type", f"must be b2b or b2c: {row['debtor_type']!r}")
        debtor_id = row["debtor_id"].strip()
        if not debtor_id:
            problems.add(name, line, "debtor_id", "required")
        i_day = parse.day(name, line, "issue_date", row["issue_date"])
        d_day = parse.day(name, line, "due_date", row["due_date"])
        if i_day is not None and d_day is not None and d_day < i_day:
            problems.add(name, line, "due_date", "due_date is before issue_date")
        currency = row["currency"].strip().upper()
        exponent = _exponent(currency)
        value = None
        if exponent is None:
            problems.add(name, line, "currency", f"not an ISO 4217 code: {row['currency']!r}")
        else:
            currencies.setdefault(currency, line)
            value = parse.money(name, line, "amount", row["amount"], True, exponent)
        if invoice_id and invoice_id not in index:
            index[invoice_id] = len(ids)
        ids.append(invoice_id)
        debtor.append(debtors.setdefault(debtor_id, len(debtors)))
        b2c.append(kind == "b2c")
        issue.append(i_day or 0)
        due.append(d_day or 0)
        amount.append(value or 0)
        e_inv.append(parse.flag(name, line, "e_invoice", row.get("e_invoice", "")))
        disputed.append(parse.flag(name, line, "disputed", row.get("disputed", "")))
        fee_agreed.append(parse.flag(name, line, "fee_agreed", row.get("fee_agreed", "")))
    if len(currencies) > 1:
        first, *others = sorted(currencies.items(), key=lambda kv: kv[1])
        for code, line in others:
            problems.add(
                name, line, "currency", f"a history has one currency: {code} after {first[0]}"
            )

    # Payments and fees are in the history's currency; with none known their amounts are
    # not checked (the invoices' currency problem is reported instead).
    history_exponent = _exponent(next(iter(currencies), ""))

    def money(file: str, line: int, column: str, text: str, positive: bool) -> int | None:
        if history_exponent is None:
            return None
        return parse.money(file, line, column, text, positive, history_exponent)

    # The as-of date defaults to the last day anything was observed: an issue, a payment or
    # a contact. Due dates lie in the future of recent invoices and observe nothing.
    latest = max(issue, default=0)
    pay_inv, pay_day, pay_amt = [], [], []
    name = "payments.csv"
    payment_rows = (
        list(_rows(folder / name, PAYMENT_COLUMNS, (), problems))
        if (folder / name).exists()
        else []
    )
    if not (folder / name).exists():
        problems.add(name, 0, "", "the file is missing (it may hold only a header row)")
    for line, row in payment_rows:
        target = index.get(row["invoice_id"].strip())
        if target is None:
            problems.add(name, line, "invoice_id", f"unknown invoice {row['invoice_id']!r}")
        p_day = parse.day(name, line, "paid_date", row["paid_date"])
        value = money(name, line, "amount", row["amount"], positive=True)
        if p_day is not None:
            latest = max(latest, p_day)
        pay_inv.append(target if target is not None else 0)
        pay_day.append(p_day or 0)
        pay_amt.append(value or 0)

    act_inv, act_day, act_kind, act_channel, act_fee = [], [], [], [], []
    name = "actions.csv"
    action_rows = (
        list(_rows(folder / name, ACTION_COLUMNS, (), problems)) if (folder / name).exists() else []
    )
    for line, row in action_rows:
        target = index.get(row["invoice_id"].strip())
        if target is None:
            problems.add(name, line, "invoice_id", f"unknown invoice {row['invoice_id']!r}")
        a_day = parse.day(name, line, "date", row["date"])
        kind = row["action"].strip()
        if kind not in ACTIONS:
            problems.add(
                name, line, "action", f"must be one of {', '.join(ACTIONS)}: {row['action']!r}"
            )
        channel = row["channel"].strip()
        if kind == "escalation":
            if channel:
                problems.add(name, line, "channel", "an escalation has no channel")
        elif channel not in CHANNELS:
            problems.add(
                name, line, "channel", f"must be one of {', '.join(CHANNELS)}: {row['channel']!r}"
            )
        fee = money(name, line, "fee", row["fee"] or "0", positive=False)
        if a_day is not None:
            latest = max(latest, a_day)
        act_inv.append(target if target is not None else 0)
        act_day.append(a_day or 0)
        act_kind.append(ACTIONS.index(kind) if kind in ACTIONS else 0)
        act_channel.append(CHANNELS.index(channel) if channel in CHANNELS else NO_CHANNEL)
        act_fee.append(fee or 0)

    as_of_day = day_number(as_of) if as_of is not None else latest
    if as_of is not None:
        for file, rows, column, days in (
            ("payments.csv", payment_rows, "paid_date", pay_day),
            ("actions.csv", action_rows, "date", act_day),
        ):
            for (line, _), value in zip(rows, days, strict=True):
                if value > as_of_day:
                    problems.add(
                        file, line, column, f"dated after the as-of date {as_of.isoformat()}"
                    )
    if not ids and not problems.problems:
        problems.add("invoices.csv", 1, "", "no invoices")
    if problems.problems:
        raise HistoryError(problems.problems, problems.more)
    return History(
        as_of=as_of_day,
        currency=next(iter(currencies)),
        invoice_id=np.array(ids, dtype=object),
        debtor=np.array(debtor, dtype=np.int32),
        debtor_ids=np.array(list(debtors), dtype=object),
        b2c=np.array(b2c, dtype=bool),
        issue=np.array(issue, dtype=np.int32),
        due=np.array(due, dtype=np.int32),
        amount=np.array(amount, dtype=np.int64),
        e_invoice=np.array(e_inv, dtype=bool),
        disputed=np.array(disputed, dtype=bool),
        fee_agreed=np.array(fee_agreed, dtype=bool),
        pay_invoice=np.array(pay_inv, dtype=np.int32),
        pay_day=np.array(pay_day, dtype=np.int32),
        pay_amount=np.array(pay_amt, dtype=np.int64),
        act_invoice=np.array(act_inv, dtype=np.int32),
        act_day=np.array(act_day, dtype=np.int32),
        act_action=np.array(act_kind, dtype=np.int8),
        act_channel=np.array(act_channel, dtype=np.int8),
        act_fee=np.array(act_fee, dtype=np.int64),
    )
