"""Phone contacts: a call task for agency staff and the one vocabulary of call outcomes.

A call is not sent: the engine stores a `CallTask` (who to call, why, what to say) for a
person to work, and later records a `CallOutcome`. The outcomes and what each means for
the flow are defined here once (DOMAIN.md: never end a call without an agreement; a
disputed claim stops automated escalation): the engine pauses on a promise until its date
and resumes if it is broken, and pauses on a dispute until someone resolves it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec

from backend.channels.amounts import format_amount
from backend.channels.message import Message, check
from backend.channels.templates import one_line, templates_for

OUTCOMES = ("reached", "promise_to_pay", "dispute", "no_answer")
Outcome = Literal["reached", "promise_to_pay", "dispute", "no_answer"]
# What each outcome does to the invoice's automated flow.
EFFECTS: Mapping[str, str] = {
    "reached": "continue",
    "promise_to_pay": "pause_until_promised_date",
    "dispute": "pause_until_resolved",
    "no_answer": "continue",
}
MAX_PROMISE_DAYS = 90  # a promise further out is a payment plan, not a promise


class CallTask(msgspec.Struct, frozen=True, kw_only=True):
    """What agency staff see in their call list."""

    tenant_id: str
    invoice_number: str
    kind: Literal["reminder", "collection_notice"]
    language: Literal["sv", "en"]
    debtor_name: str
    phone: str
    reason: str  # one line for the list: why this call
    script: str  # what to say, from the tenant's call.txt template
    amount_due: int
    currency: str
    call_by: dt.date


class CallOutcome(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the call came to, as staff record it."""

    outcome: Outcome
    promised_date: dt.date | None = None
    note: Annotated[str, msgspec.Meta(max_length=2_000)] = ""


class OutcomeError(ValueError):
    def __init__(self, violations: list[tuple[str, str]]) -> None:
        self.violations = violations
        super().__init__("; ".join(f"{path}: {text}" for path, text in violations))


def call_task(message: Message, overrides: Mapping[str, str] | None = None) -> CallTask:
    """The task for a phone step; MessageError when the message cannot be called."""
    message = check(message)
    script = templates_for(overrides).render_call_script(message)
    total = format_amount(message.total, message.currency, message.language)
    reason = one_line(f"{message.kind} {message.invoice_number}: {total}, due {message.due_date}")
    assert message.debtor.phone is not None  # check() demands it for phone steps
    return CallTask(
        tenant_id=message.creditor.tenant_id,
        invoice_number=message.invoice_number,
        kind=message.kind,
        language=message.language,
        debtor_name=one_line(message.debtor.name),
        phone=message.debtor.phone,
        reason=reason,
        script=script,
        amount_due=message.total,
        currency=message.currency,
        call_by=message.sent_on,
    )


def check_outcome(outcome: CallOutcome, called_on: dt.date) -> CallOutcome:
    """A promise needs a date after the call and within `MAX_PROMISE_DAYS`; other outcomes
    carry none (a date on "no_answer" is a slip of the hand, not data)."""
    problems: list[tuple[str, str]] = []
    if outcome.outcome == "promise_to_pay":
        if outcome.promised_date is None:
            problems.append(("promised_date", "a promise to pay needs its date"))
        elif (
            not called_on < outcome.promised_date <= called_on + dt.timedelta(days=MAX_PROMISE_DAYS)
        ):
            problems.append(
                (
                    "promised_date",
                    f"after the call and at most {MAX_PROMISE_DAYS} days later",
                )
            )
    elif outcome.promised_date is not None:
        problems.append(
            ("promised_date", f"only a promise to pay has a date, not {outcome.outcome}")
        )
    if problems:
        raise OutcomeError(problems)
    return outcome


def parse_outcome(raw: bytes | str, called_on: dt.date) -> CallOutcome:
    """An outcome from JSON, every problem with its path."""
    try:
        outcome = msgspec.json.decode(raw, type=CallOutcome)
    except msgspec.ValidationError as exc:
        raise OutcomeError([("$", str(exc))]) from exc
    except msgspec.DecodeError as exc:
        raise OutcomeError([("$", f"not JSON: {exc}")]) from exc
    return check_outcome(outcome, called_on)
