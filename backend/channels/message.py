"""What the dunning engine hands a channel: one contact about one invoice.

Everything a reminder or an inkassokrav must state (DOMAIN.md) is a field here, so a
template cannot forget it silently (templates render with StrictUndefined) and a channel
never reaches into the database. Money is integer minor units with its ISO 4217 currency;
every text field has a bound, because debtor names and addresses come from clients' ERPs
and a 10 MB name must not reach a mail server or a PDF.

`check(message)` validates a message built in code the same way one decoded from JSON is
validated (bounds, formats) and adds the rules that tie fields together (a collection
notice's deadline at least `Rules.min_collection_deadline_days` from sending).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from simulator.currency import UnknownCurrency, minor_unit_exponent
from simulator.rules import SWEDEN, Rules

LANGUAGES = ("sv", "en")

Language = Literal["sv", "en"]
# The same words as simulator.policy.ACTIONS and CHANNELS, spelt out for msgspec to check;
# tests/channels/test_message.py holds them equal.
StepKind = Literal["reminder", "collection_notice"]
Channel = Literal["email", "sms", "letter", "phone"]
InterestMode = Literal["statutory", "contract", "none"]
NextStep = Literal["collection_notice", "enforcement", "none"]

Minor = Annotated[int, msgspec.Meta(ge=0, le=10**15)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Line = Annotated[str, msgspec.Meta(max_length=200)]
Short = Annotated[str, msgspec.Meta(max_length=64)]
# ASCII addresses only: an internationalised one needs SMTPUTF8, which not every server has.
Email = Annotated[
    str,
    msgspec.Meta(
        max_length=254,
        pattern=r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$",
    ),
]
Phone = Annotated[str, msgspec.Meta(pattern=r"^\+[1-9][0-9]{6,14}$")]  # E.164
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
BasisPoints = Annotated[int, msgspec.Meta(ge=0, le=100_000)]


class MessageError(ValueError):
    """A message the engine built is not sendable; every problem with its path."""

    def __init__(self, violations: list[tuple[str, str]]) -> None:
        self.violations = violations
        super().__init__("; ".join(f"{path}: {text}" for path, text in violations))


class Creditor(msgspec.Struct, frozen=True, kw_only=True):
    """The tenant, as the debtor knows it: the name on the invoice, not our tenant id."""

    tenant_id: Short
    name: Name
    org_number: Line = ""
    address: tuple[Line, ...] = ()


class Debtor(msgspec.Struct, frozen=True, kw_only=True):
    name: Name
    email: Email | None = None
    phone: Phone | None = None
    address: Annotated[tuple[Line, ...], msgspec.Meta(max_length=6)] = ()


class Interest(msgspec.Struct, frozen=True, kw_only=True):
    """Late interest so far and how it is computed, as the letter must explain it.

    `annual_rate_bp` is None when the rate is unknown (the reference-rate table lacks the
    current half-year): the message then says interest is unknown instead of showing 0.
    For statutory interest, `reference_rate_bp` + `margin_bp` = `annual_rate_bp`.
    """

    mode: InterestMode
    accrued: Minor | None = 0
    annual_rate_bp: BasisPoints | None = None
    reference_rate_bp: BasisPoints | None = None
    margin_bp: BasisPoints | None = None
    from_date: dt.date | None = None
    basis: Minor = 0  # the outstanding principal the interest accrues on

    @property
    def known(self) -> bool:
        return self.mode == "none" or (self.annual_rate_bp is not None and self.accrued is not None)


class PaymentInstructions(msgspec.Struct, frozen=True, kw_only=True):
    bankgiro: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{3,4}-[0-9]{4}$")] | None = None
    iban: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}$")] | None = None
    reference: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9-]{1,35}$")]


class DisputeContact(msgspec.Struct, frozen=True, kw_only=True):
    """Where the debtor questions the claim: a disputed invoice leaves ordinary collection."""

    email: Email | None = None
    phone: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    url: Annotated[str, msgspec.Meta(max_length=300, pattern=r"^https://\S+$")] | None = None


class Message(msgspec.Struct, frozen=True, kw_only=True):
    """One contact: which step, about which invoice, to whom, in which language."""

    kind: StepKind
    channel: Channel
    language: Language
    sent_on: dt.date
    creditor: Creditor
    debtor: Debtor
    invoice_number: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    issue_date: dt.date | None = None
    due_date: dt.date
    currency: Currency
    amount: Minor  # outstanding principal
    fee: Minor = 0  # the fee this step charges (reminder or collection fee)
    fees_before: Minor = 0  # fees charged by earlier steps and still unpaid
    compensation: Minor = 0  # B2B förseningsersättning, instead of the fees
    interest: Interest
    payment: PaymentInstructions
    dispute: DisputeContact
    pay_by: dt.date  # reminder: pay by; collection notice: the deadline
    next_step: NextStep = "none"

    @property
    def total(self) -> int:
        """What the debtor is asked to pay now; unknown interest counts as none here and the
        text says it comes on top."""
        return (
            self.amount
            + self.fee
            + self.fees_before
            + self.compensation
            + (self.interest.accrued or 0)
        )


def check(message: Message, rules: Rules = SWEDEN) -> Message:
    """The message again if it may be sent; MessageError listing every problem otherwise."""
    try:
        message = msgspec.convert(msgspec.to_builtins(message), Message)
    except msgspec.ValidationError as exc:
        raise MessageError([(_path(str(exc)), str(exc))]) from exc
    problems: list[tuple[str, str]] = []
    try:
        minor_unit_exponent(message.currency)
    except UnknownCurrency as exc:
        problems.append(("currency", str(exc)))
    if message.kind == "collection_notice":
        earliest = message.sent_on + dt.timedelta(days=rules.min_collection_deadline_days)
        if message.pay_by < earliest:
            problems.append(
                (
                    "pay_by",
                    f"a collection notice gives at least {rules.min_collection_deadline_days}"
                    f" days from sending: not before {earliest.isoformat()}",
                )
            )
        if message.fee > rules.collection_fee_cap:
            problems.append(("fee", f"above the collection fee cap {rules.collection_fee_cap}"))
    elif message.fee > rules.reminder_fee_cap:
        problems.append(("fee", f"above the reminder fee cap {rules.reminder_fee_cap}"))
    if message.fee and message.sent_on <= message.due_date:
        problems.append(("fee", "a fee is charged only after the due date"))
    if message.compensation and message.fee:
        problems.append(("compensation", "B2B compensation replaces the fees, never both"))
    if message.payment.bankgiro is None and message.payment.iban is None:
        problems.append(("payment", "a bankgiro or an IBAN to pay to"))
    if not (message.dispute.email or message.dispute.phone or message.dispute.url):
        problems.append(("dispute", "an email, phone or address to dispute the claim"))
    interest = message.interest
    if interest.mode != "none" and interest.from_date is None:
        problems.append(("interest.from_date", "interest runs from a date"))
    if message.channel == "email" and message.debtor.email is None:
        problems.append(("debtor.email", "an email contact needs the debtor's address"))
    if message.channel in ("sms", "phone") and message.debtor.phone is None:
        problems.append(("debtor.phone", f"a {message.channel} contact needs a phone number"))
    if message.channel == "letter" and not message.debtor.address:
        problems.append(("debtor.address", "a letter needs a postal address"))
    if problems:
        raise MessageError(problems)
    return message


def _path(error: str) -> str:
    """msgspec ends its error with "- at `$.debtor.email`": keep the path part."""
    marker = "at `$."
    if marker in error:
        return error.split(marker, 1)[1].rstrip("`")
    return "$"
