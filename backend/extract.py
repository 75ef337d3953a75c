"""The tenant's book as the simulator's arrays: imported history and live activity alike.

What the simulator learns from is everything the book knows about how invoices were paid:
the invoices (imported or pushed by the ERP), their matched payments, the contacts made
before kravlab (`contacts`, from imports), the contacts the dunning engine made
(`dunning_steps` that were sent) and the hand-overs to collection (`collection_cases`).
Nothing personal leaves the book: debtors and invoices are named by kravlab's own UUIDs,
never by the client's ids, names, emails or addresses.

Invoices are ordered by (due date, id) and debtors numbered in order of first appearance,
so the same book always gives the same arrays (the fit and its fingerprint depend on it).
"""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Any

import numpy as np
from piccolo.query.functions.aggregate import Count, Max

from backend.tables import CollectionCase, Contact, DunningStep, Invoice, Payment
from simulator.history import ACTIONS, CHANNELS, EPOCH, NO_CHANNEL, History, day_number
from tenants.scope import TenantScope

# A step counts as a contact made once it was delivered (or the call was made); pending,
# failed and skipped steps never reached the debtor.
MADE = ("sent",)


class EmptyBook(ValueError):
    """The book holds no invoice to learn from."""


def _days(values: list[Any]) -> np.ndarray:
    if not values:
        return np.zeros(0, dtype=np.int32)
    return (np.array(values, dtype="datetime64[D]") - np.datetime64(EPOCH, "D")).astype(np.int32)


def _codes(values: list[str], names: tuple[str, ...], empty: int = NO_CHANNEL) -> np.ndarray:
    lookup = {name: i for i, name in enumerate(names)}
    return np.array([lookup.get(v, empty) for v in values], dtype=np.int8).reshape(len(values))


async def book_history(scope: TenantScope, as_of: date) -> History:
    """The book as of `as_of` (payments and contacts after it are left out, like a history
    file's as-of date); raises EmptyBook when there is no invoice in the tenant's currency
    issued by then."""
    invoices = (
        await scope.select(
            Invoice,
            Invoice.id,
            Invoice.debtor,
            Invoice.debtor.type,
            Invoice.issue_date,
            Invoice.due_date,
            Invoice.amount,
            Invoice.e_invoice,
            Invoice.state,
            Invoice.fee_agreed,
        )
        .where((Invoice.currency == scope.currency) & (Invoice.issue_date <= as_of))
        .order_by(Invoice.due_date, Invoice.id)
    )
    if not invoices:
        raise EmptyBook("the book holds no invoice to learn from yet")
    position = {row["id"]: i for i, row in enumerate(invoices)}
    debtor_number: dict[Any, int] = {}
    debtor = np.array(
        [debtor_number.setdefault(row["debtor"], len(debtor_number)) for row in invoices],
        dtype=np.int32,
    )
    payments = await scope.select(
        Payment, Payment.invoice, Payment.paid_date, Payment.amount
    ).where((Payment.invoice.is_not_null()) & (Payment.paid_date <= as_of))
    payments = [p for p in payments if p["invoice"] in position]
    contacts = await scope.select(
        Contact, Contact.invoice, Contact.date, Contact.action, Contact.channel, Contact.fee
    ).where(Contact.date <= as_of)
    steps = await scope.select(
        DunningStep,
        DunningStep.invoice,
        DunningStep.run_date,
        DunningStep.action,
        DunningStep.channel,
        DunningStep.fee,
    ).where(DunningStep.status.is_in(list(MADE)) & (DunningStep.run_date <= as_of))
    cases = await scope.select(
        CollectionCase, CollectionCase.invoice, CollectionCase.opened_on
    ).where(CollectionCase.opened_on <= as_of)
    actions = [
        (c["invoice"], c["date"], c["action"], c["channel"] or "", c["fee"]) for c in contacts
    ]
    actions += [(s["invoice"], s["run_date"], s["action"], s["channel"], s["fee"]) for s in steps]
    actions += [(c["invoice"], c["opened_on"], "escalation", "", 0) for c in cases]
    actions = [a for a in actions if a[0] in position and a[2] in ACTIONS]
    actions.sort(key=lambda a: (position[a[0]], a[1]))
    channel = _codes([a[3] for a in actions], CHANNELS, NO_CHANNEL)
    escalation = _codes([a[2] for a in actions], ACTIONS) == ACTIONS.index("escalation")
    channel[escalation] = NO_CHANNEL
    return History(
        as_of=day_number(as_of),
        currency=scope.currency,
        invoice_id=np.array([str(row["id"]) for row in invoices]),
        debtor=debtor,
        debtor_ids=np.array([str(d) for d in debtor_number]),
        b2c=np.array([row["debtor.type"] == "b2c" for row in invoices], dtype=bool),
        issue=_days([row["issue_date"] for row in invoices]),
        due=_days([row["due_date"] for row in invoices]),
        amount=np.array([row["amount"] for row in invoices], dtype=np.int64),
        e_invoice=np.array([bool(row["e_invoice"]) for row in invoices], dtype=bool),
        disputed=np.array([row["state"] == "disputed" for row in invoices], dtype=bool),
        fee_agreed=np.array([bool(row["fee_agreed"]) for row in invoices], dtype=bool),
        pay_invoice=np.array([position[p["invoice"]] for p in payments], dtype=np.int32),
        pay_day=_days([p["paid_date"] for p in payments]),
        pay_amount=np.array([p["amount"] for p in payments], dtype=np.int64),
        act_invoice=np.array([position[a[0]] for a in actions], dtype=np.int32),
        act_day=_days([a[1] for a in actions]),
        act_action=_codes([a[2] for a in actions], ACTIONS),
        act_channel=channel,
        act_fee=np.array([a[4] for a in actions], dtype=np.int64),
    )


async def data_version(scope: TenantScope) -> str:
    """A digest of what the simulator reads, from aggregates the database answers without
    reading the rows: rows counted and the latest of each kind created or matched. New
    invoices, payments, matches, contacts, sent steps or cases change it; the dunning run's
    interest bookkeeping does not (the simulator does not read it)."""
    parts: list[Any] = []
    for table, moment, condition in (
        (Invoice, Invoice.updated_at, None),
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
