"""The tenant's book as the simulator's arrays: imported history and live activity alike.

What the simulator learns from is everything the book knows about how invoices were paid:
the invoices (imported or pushed by the ERP), their matched payments, the contacts made
before kravlab (`contacts`, from imports), the contacts the dunning engine made
(`dunning_steps` that were sent) and the hand-overs to collection (`collection_cases`).
No name, email or address is read: invoices and debtors are named by the client's own ids
(`external_id`), as in a history file; the arrays are kept only under `var/extracts/<tenant>/`
for the next simulation of an unchanged book (a saved model
keeps parameters and per-debtor class weights, no ids).

The history comes in `simulator.history.canonical` order (invoices by due day and id,
debtors by first appearance), the order `kravlab sim` puts the same history in when it reads
the files: the service and the library then fit the same model and give the same forecast.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import zipfile
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from piccolo.query.functions.aggregate import Count, Max

from backend.tables import CollectionCase, Contact, Debtor, DunningStep, Invoice, Payment
from simulator.history import ACTIONS, CHANNELS, NO_CHANNEL, History, canonical, day_number
from tenants.scope import TenantScope
from tenants.transactions import read_snapshot

# A step counts as a contact made once it was delivered (or the call was made); pending,
# failed and skipped steps never reached the debtor.
MADE = ("sent",)


class EmptyBook(ValueError):
    """The book holds no invoice to learn from."""


def _days(values: list[Any]) -> np.ndarray:
    return np.array(values, dtype=np.int32).reshape(len(values))


def _money(values: list[Any]) -> np.ndarray:
    return np.array(values, dtype=np.int64).reshape(len(values))


def _text(values: list[Any]) -> np.ndarray:
    """Strings as a fixed-width numpy array: compared, sorted and searched in C."""
    return np.array(values, dtype=str).reshape(len(values))


def _codes(values: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """Each value's index in `names`; -1 for anything else."""
    codes = np.full(len(values), -1, dtype=np.int64)
    for i, name in enumerate(names):
        codes[values == name] = i
    return codes


def _first_seen(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct keys in order of first appearance, and each key's number in that order."""
    distinct, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return distinct[order], rank[inverse.reshape(-1)].astype(np.int32)


class _Lookup:
    """Positions of keys in an array of them, by binary search (no Python dict of a million
    keys)."""

    def __init__(self, keys: np.ndarray) -> None:
        self.order = np.argsort(keys, kind="stable")
        self.sorted = keys[self.order]

    def find(self, wanted: np.ndarray) -> np.ndarray:
        """Each wanted key's position in the keys; -1 where it is not there."""
        if not len(self.sorted) or not len(wanted):
            return np.full(len(wanted), -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.sorted, wanted), len(self.sorted) - 1)
        return np.where(self.sorted[at] == wanted, self.order[at], -1)


async def book_history(scope: TenantScope, as_of: date) -> History:
    """The book as of `as_of` (payments and contacts after it are left out, like a history
    file's as-of date), read in one snapshot; raises EmptyBook when there is no invoice in
    the tenant's currency issued by then."""
    async with read_snapshot():
        (
            ids,
            external_ids,
            debtors,
            issued,
            due,
            amount,
            e_invoice,
            state,
            fee_agreed,
            currency,
        ) = await scope.columns(
            Invoice,
            (
                "id",
                "external_id",
                "debtor",
                "issue_date",
                "due_date",
                "amount",
                "e_invoice",
                "state",
                "fee_agreed",
                "currency",
            ),
            order_by=("due_date", "id"),
            days=("issue_date", "due_date"),
            text=("id", "debtor"),
        )
        debtor_ids, debtor_names, debtor_types = await scope.columns(
            Debtor, ("id", "external_id", "type"), text=("id",)
        )
        paid = await scope.columns(
            Payment, ("invoice", "paid_date", "amount"), days=("paid_date",), text=("invoice",)
        )
        contacts = await scope.columns(
            Contact,
            ("invoice", "date", "action", "channel", "fee"),
            days=("date",),
            text=("invoice",),
        )
        steps = await scope.columns(
            DunningStep,
            ("invoice", "run_date", "action", "channel", "fee", "status"),
            days=("run_date",),
            text=("invoice",),
        )
        cases = await scope.columns(
            CollectionCase, ("invoice", "opened_on"), days=("opened_on",), text=("invoice",)
        )
    issue = _days(issued)
    limit = day_number(as_of)
    keep = np.flatnonzero(_text(currency) == scope.currency) if ids else np.zeros(0, np.int64)
    keep = keep[issue[keep] <= limit]
    if not len(keep):
        raise EmptyBook("the book holds no invoice to learn from yet")
    invoice_ids = _text(ids)[keep]
    lookup = _Lookup(invoice_ids)
    debtor_keys = _text(debtors)[keep]
    first_seen, debtor = _first_seen(debtor_keys)
    debtor_rows = _Lookup(_text(debtor_ids))
    b2c = _text(debtor_types)[debtor_rows.find(debtor_keys)] == "b2c"

    pay_at, pay_day = lookup.find(_text(paid[0])), _days(paid[1])
    pay_keep = (pay_at >= 0) & (pay_day <= limit)
    sent = np.isin(_text(steps[5]), MADE)
    escalations = len(cases[0])

    def joined(imported: list[Any], taken: list[Any], escalated: list[Any]) -> np.ndarray:
        return (
            np.concatenate([_text(imported), _text(taken)[sent], _text(escalated)])
            if (len(imported) + len(taken) + len(escalated))
            else np.zeros(0, dtype=str)
        )

    at = lookup.find(joined(contacts[0], steps[0], cases[0]))
    day = np.concatenate([_days(contacts[1]), _days(steps[1])[sent], _days(cases[1])])
    action = _codes(joined(contacts[2], steps[2], ["escalation"] * escalations), ACTIONS)
    channel = _codes(joined([c or "" for c in contacts[3]], steps[3], [""] * escalations), CHANNELS)
    channel[action == ACTIONS.index("escalation")] = NO_CHANNEL
    fee = np.concatenate(
        [_money(contacts[4]), _money(steps[4])[sent], np.zeros(escalations, np.int64)]
    )
    ok = np.flatnonzero((at >= 0) & (day <= limit) & (action >= 0))
    ok = ok[np.lexsort((day[ok], at[ok]))]
    return canonical(
        History(
            as_of=limit,
            currency=scope.currency,
            invoice_id=_text(external_ids)[keep].astype(object),
            debtor=debtor,
            debtor_ids=_text(debtor_names)[debtor_rows.find(first_seen)].astype(object),
            b2c=b2c,
            issue=issue[keep],
            due=_days(due)[keep],
            amount=_money(amount)[keep],
            e_invoice=np.array(e_invoice, dtype=bool).reshape(-1)[keep],
            disputed=_text(state)[keep] == "disputed",
            fee_agreed=np.array(fee_agreed, dtype=bool).reshape(-1)[keep],
            pay_invoice=pay_at[pay_keep].astype(np.int32),
            pay_day=pay_day[pay_keep],
            pay_amount=_money(paid[2])[pay_keep],
            act_invoice=at[ok].astype(np.int32),
            act_day=day[ok],
            act_action=action[ok].astype(np.int8),
            act_channel=channel[ok].astype(np.int8),
            act_fee=fee[ok],
        )
    )


async def data_version(scope: TenantScope) -> str:
    """A digest of what the simulator reads, from aggregates the database answers without
    reading the rows: rows counted and the latest of each kind created or matched. New
    invoices, payments, matches, contacts, sent steps or cases change it; the dunning run's
    interest bookkeeping does not (the simulator does not read it)."""
    parts: list[Any] = []
    for table, moment, condition in (
        (Invoice, Invoice.updated_at, None),
        (Debtor, Debtor.updated_at, None),  # a debtor's type is read
        (Payment, Payment.matched_at, Payment.invoice.is_not_null()),
        (Contact, Contact.date, None),
        (DunningStep, DunningStep.sent_at, DunningStep.status.is_in(list(MADE))),
        (CollectionCase, CollectionCase.opened_at, None),
    ):
        query = scope.select(table, Count(), Max(moment))
        if condition is not None:
            query = query.where(condition)
        row = await query.first()
        parts.append(row if row is None else sorted((k, str(v)) for k, v in row.items()))
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


# Every array of a History, as stored in an extract file (the ids as fixed-width text).
_FIELDS = (
    "invoice_id",
    "debtor",
    "debtor_ids",
    "b2c",
    "issue",
    "due",
    "amount",
    "e_invoice",
    "disputed",
    "fee_agreed",
    "pay_invoice",
    "pay_day",
    "pay_amount",
    "act_invoice",
    "act_day",
    "act_action",
    "act_channel",
    "act_fee",
)


def _save(history: History, path: Path) -> None:
    arrays = {name: np.asarray(getattr(history, name)) for name in _FIELDS}
    for name in ("invoice_id", "debtor_ids"):
        arrays[name] = arrays[name].astype(str)
    # A file of its own (two jobs may extract the same book at once), renamed into place: a
    # reader never sees half a file.
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".partial", delete=False) as handle:
        np.savez(handle, **arrays)  # type: ignore[arg-type]  # numpy stubs: allow_pickle
    Path(handle.name).replace(path)


def _load(path: Path, as_of: int, currency: str) -> History:
    with np.load(path, allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in _FIELDS}
    for name in ("invoice_id", "debtor_ids"):
        arrays[name] = arrays[name].astype(object)
    return History(as_of=as_of, currency=currency, **arrays)


async def cached_history(scope: TenantScope, var_dir: Path, as_of: date) -> History:
    """`book_history`, kept on disk under the book's `data_version` and the as-of date: a
    client tuning a draft simulates again and again on a book that has not changed, and
    reading a large book costs seconds where the stored arrays load in milliseconds. A new
    invoice, payment, match, contact, sent step or case changes the version, and the next
    read extracts afresh; a file that cannot be read is extracted again, not trusted."""
    folder = var_dir / "extracts" / str(scope.tenant_id)
    path = folder / f"{await data_version(scope)}-{as_of.isoformat()}.npz"
    if path.exists():
        try:
            return await asyncio.to_thread(_load, path, day_number(as_of), scope.currency)
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
            path.unlink(missing_ok=True)
    history = await book_history(scope, as_of)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.npz"):  # one book, one current extract
        if old != path:
            old.unlink(missing_ok=True)
    await asyncio.to_thread(_save, history, path)
    return history
