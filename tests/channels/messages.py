"""Messages the channel tests send: one per kind and language, with åäö in every name."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from backend.channels.message import (
    Creditor,
    Debtor,
    DisputeContact,
    Interest,
    Message,
    PaymentInstructions,
)

SENT_ON = dt.date(2026, 3, 2)
DUE = dt.date(2026, 2, 1)


def message(**changes: Any) -> Message:
    """A Swedish reminder by email, fully filled; `changes` replace top-level fields."""
    base = Message(
        kind="reminder",
        channel="email",
        language="sv",
        sent_on=SENT_ON,
        creditor=Creditor(
            tenant_id="t-1",
            name="Åkesson & Öberg AB",
            org_number="556677-8899",
            address=("Storgatan 1", "111 22 Stockholm"),
        ),
        debtor=Debtor(
            name="Märta Ångström",
            email="marta@example.se",
            phone="+46701234567",
            address=("Västra vägen 3", "222 33 Göteborg"),
        ),
        invoice_number="F-2026-0042",
        issue_date=dt.date(2026, 1, 2),
        due_date=DUE,
        currency="SEK",
        amount=123_450,
        fee=6_000,
        interest=Interest(
            mode="statutory",
            accrued=1_015,
            annual_rate_bp=1_000,
            reference_rate_bp=200,
            margin_bp=800,
            from_date=DUE,
            basis=123_450,
        ),
        payment=PaymentInstructions(bankgiro="5555-1234", reference="20260042"),
        dispute=DisputeContact(email="fragor@akesson.se", phone="08-123 456 78"),
        pay_by=SENT_ON + dt.timedelta(days=10),
    )
    return msgspec.structs.replace(base, **changes)


def notice(**changes: Any) -> Message:
    """A collection notice (inkassokrav) by letter with the 8-day deadline at its minimum."""
    values: dict[str, Any] = {
        "kind": "collection_notice",
        "channel": "letter",
        "fee": 18_000,
        "fees_before": 6_000,
        "pay_by": SENT_ON + dt.timedelta(days=8),
        "next_step": "enforcement",
    }
    values.update(changes)
    return message(**values)
