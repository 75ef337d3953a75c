"""What the invoice book's routes answer: invoices with their derived status, the timeline of
one invoice, and payments with how they were matched. Amounts are integers in minor units.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal, TypeAlias
from uuid import UUID

from msgspec import Meta, Struct

from backend.book import STATUSES

Status: TypeAlias = Literal[STATUSES]  # type: ignore[valid-type]
Day = date  # the timeline's entries have a field named `date`
MatchedBy = Literal["invoice_id", "reference", "manual"]
MinorUnits = Annotated[int, Meta(ge=0, description="minor units of the currency (öre, cent)")]
CurrencyCode = Annotated[str, Meta(pattern="^[A-Z]{3}$", description="ISO 4217")]


class DebtorRef(Struct):
    id: UUID
    external_id: str
    name: str
    type: Literal["b2b", "b2c"]


class Invoice(Struct):
    id: UUID
    external_id: str
    debtor: DebtorRef
    issue_date: date
    due_date: date
    amount: MinorUnits
    currency: CurrencyCode
    paid_amount: MinorUnits
    outstanding: MinorUnits
    overpaid: MinorUnits
    fees: Annotated[int, Meta(ge=0, description="fees the dunning engine charged")]
    interest_accrued: (
        Annotated[
            int,
            Meta(
                ge=0,
                description="late interest outstanding as of interest_as_of (brought up to "
                "date by each dunning run); null: unknown, the reference rate of a half-year "
                "is missing",
            ),
        ]
        | None
    )
    interest_as_of: date | None
    status: Status
    days_past_due: Annotated[int, Meta(ge=0)]
    settled_date: date | None
    paused_until: date | None
    reference: str | None
    e_invoice: bool
    fee_agreed: bool
    description: str | None
    created_at: datetime
    updated_at: datetime


class PaymentEntry(Struct, tag_field="type", tag="payment"):
    """A payment settled against the invoice."""

    date: Annotated[str, Meta(description="the payment's date, ISO 8601")]
    payment_id: UUID
    external_id: str
    amount: MinorUnits
    matched_by: MatchedBy | None


class FlowEntry(Struct, tag_field="type"):
    """A change of the invoice's flow by a person or a key; `type` is what was done."""

    date: Annotated[str, Meta(description="when, ISO 8601 with the time")]
    reason: str
    until: Day | None
    actor: str


class PauseEntry(FlowEntry, tag="pause"):
    pass


class ResumeEntry(FlowEntry, tag="resume"):
    pass


class DisputeEntry(FlowEntry, tag="dispute"):
    pass


class ResolveEntry(FlowEntry, tag="resolve"):
    pass


TimelineEntry = PaymentEntry | PauseEntry | ResumeEntry | DisputeEntry | ResolveEntry


class InvoiceDetail(Invoice):
    """One invoice with everything that happened to it, oldest first."""

    timeline: list[TimelineEntry]


class Payment(Struct):
    id: UUID
    external_id: str
    amount: MinorUnits
    currency: CurrencyCode
    paid_date: date
    invoice_id: Annotated[UUID | None, Meta(description="null while unmatched")]
    invoice_external_id: str | None
    reference: str | None
    matched_by: MatchedBy | None
    matched_at: datetime | None
    created_at: datetime
