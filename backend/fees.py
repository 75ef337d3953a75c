"""Which fee a dunning step charges now, if any, and why (DOMAIN.md, lag 1981:739).

One function, `fee_to_charge`, decides for the engine, the preview and the letters alike, so
the rules live in one place. The caps and the compensation come from `simulator.rules.Rules`.

The rules, in the order they are checked:

1. Nothing before or on the due date: fees and compensation arise only from lateness.
2. B2B compensation (förseningsersättning, 450 kr) under a policy that asks for it and only
   for a company debtor: due once, with the first step after the due date, *instead of* the
   reminder and collection fees. When fees were already charged (the policy changed from fees
   to compensation, or a step charged before), the compensation is reduced by them, so the
   debtor never owes more than the compensation for the creditor's own collection costs of
   one invoice; fees that already reach it leave nothing to charge. A consumer never owes
   compensation: for a B2C debtor the request is ignored and the ordinary rules apply.
3. Once compensation is charged, no reminder or collection fee follows.
4. Reminder fee (påminnelseavgift): only where it was agreed when the debt arose
   (`fee_agreed`), once per invoice however many reminders go out, at most the cap.
5. Collection fee (inkassokrav): once per debt, at most the cap; the law grants it without a
   prior agreement, so `fee_agreed` does not gate it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Literal

from simulator.policy import ACTIONS, Policy, Step
from simulator.rules import SWEDEN, Rules

FeeKind = Literal["reminder_fee", "collection_fee", "compensation"]
Reason = Literal[
    "charged",
    "capped",
    "compensation_due",
    "compensation_reduced_by_fees",
    "fees_cover_compensation",
    "compensation_already_charged",
    "compensation_instead_of_fees",
    "not_overdue",
    "no_fee_in_step",
    "fee_not_agreed",
    "already_charged",
]

REASONS: dict[str, str] = {
    "charged": "the step's fee, charged once",
    "capped": "the step's fee cut to the legal cap",
    "compensation_due": "B2B late-payment compensation, due once the invoice is late",
    "compensation_reduced_by_fees": "compensation less the fees already charged (instead of them)",
    "fees_cover_compensation": "fees already charged reach the compensation: nothing more",
    "compensation_already_charged": "the compensation is charged once per invoice",
    "compensation_instead_of_fees": "no fee on top of B2B compensation",
    "not_overdue": "no fee on or before the due date",
    "no_fee_in_step": "the policy's step charges no fee",
    "fee_not_agreed": "a reminder fee needs an agreement made when the debt arose",
    "already_charged": "this fee is charged once per invoice",
}


@dataclass(frozen=True)
class Charged:
    """What an invoice has been charged so far, in minor units."""

    reminder_fee: int = 0
    collection_fee: int = 0
    compensation: int = 0

    @property
    def fees(self) -> int:
        return self.reminder_fee + self.collection_fee

    @property
    def total(self) -> int:
        return self.fees + self.compensation

    def plus(self, decision: FeeDecision) -> Charged:
        if decision.kind is None or decision.amount == 0:
            return self
        current = getattr(self, decision.kind)
        return replace(self, **{decision.kind: current + decision.amount})


@dataclass(frozen=True)
class FeeState:
    """The facts about one invoice that the fee rules read."""

    debtor_type: str  # "b2b" or "b2c"
    fee_agreed: bool
    due_date: date
    charged: Charged = Charged()


@dataclass(frozen=True)
class FeeDecision:
    kind: FeeKind | None
    amount: int
    reason: Reason

    @property
    def explanation(self) -> str:
        return REASONS[self.reason]


def _nothing(reason: Reason) -> FeeDecision:
    return FeeDecision(None, 0, reason)


def fee_to_charge(
    state: FeeState,
    action: str,
    on: date,
    step_fee: int = 0,
    compensation: bool = False,
    rules: Rules = SWEDEN,
) -> FeeDecision:
    """The fee that taking `action` on day `on` charges now (zero with the reason why not).

    `step_fee` is what the policy's step asks for; `compensation` whether the policy asks for
    B2B compensation instead of fees.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    if step_fee < 0:
        raise ValueError("a fee is never negative")
    charged = state.charged
    if on <= state.due_date:
        return _nothing("not_overdue")
    if compensation and state.debtor_type == "b2b":
        if charged.compensation:
            return _nothing("compensation_already_charged")
        amount = max(0, rules.b2b_compensation - charged.fees)
        if amount == 0:
            return _nothing("fees_cover_compensation")
        reason: Reason = "compensation_reduced_by_fees" if charged.fees else "compensation_due"
        return FeeDecision("compensation", amount, reason)
    if charged.compensation:
        return _nothing("compensation_instead_of_fees")
    if step_fee == 0:
        return _nothing("no_fee_in_step")
    if action == "reminder":
        if not state.fee_agreed:
            return _nothing("fee_not_agreed")
        if charged.reminder_fee:
            return _nothing("already_charged")
        cap = rules.reminder_fee_cap
        kind: FeeKind = "reminder_fee"
    else:
        if charged.collection_fee:
            return _nothing("already_charged")
        cap = rules.collection_fee_cap
        kind = "collection_fee"
    return FeeDecision(kind, min(step_fee, cap), "capped" if step_fee > cap else "charged")


def fee_for_step(
    state: FeeState, policy: Policy, step: Step, on: date, rules: Rules = SWEDEN
) -> FeeDecision:
    """`fee_to_charge` for one of a policy's steps."""
    return fee_to_charge(state, step.action, on, step.fee, policy.compensation, rules)
