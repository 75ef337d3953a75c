"""How a payment is split over what an invoice owes: one function, used everywhere.

The default order is fees, then interest, then principal. Räntelagen and inkassolagen do not
themselves state an order of application; fees first, then interest, then the principal is
the order Swedish collection practice applies to a payment that does not say what it pays
(costs before interest before capital, the same default rule as e.g. BGB § 367), and it is
the order most favourable to the creditor that the law allows, since interest accrues only
on the principal. An agreement with the debtor, or a policy, may state another order: pass
it as `order`, any arrangement of the three parts.

What the payment exceeds the debt by is an overpayment, kept apart (to refund or to set
against another invoice); the allocated parts plus the overpayment always equal the payment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Part = Literal["fees", "interest", "principal"]
Order = tuple[Part, Part, Part]
FEES_INTEREST_PRINCIPAL: Order = ("fees", "interest", "principal")
DEFAULT_ORDER = FEES_INTEREST_PRINCIPAL


@dataclass(frozen=True)
class Owed:
    """Outstanding amounts of one invoice, in minor units."""

    fees: int = 0
    interest: int = 0
    principal: int = 0

    def __post_init__(self) -> None:
        if min(self.fees, self.interest, self.principal) < 0:
            raise ValueError("an outstanding amount is never negative")

    @property
    def total(self) -> int:
        return self.fees + self.interest + self.principal


@dataclass(frozen=True)
class Allocation:
    """The split of one payment and what the invoice still owes after it."""

    fees: int
    interest: int
    principal: int
    overpayment: int
    remaining: Owed

    @property
    def applied(self) -> int:
        return self.fees + self.interest + self.principal


def allocate(owed: Owed, payment: int, order: Order = DEFAULT_ORDER) -> Allocation:
    """Apply `payment` to `owed` part by part in `order`; the rest is an overpayment."""
    if payment < 0:
        raise ValueError("a payment is never negative")
    if sorted(order) != sorted(FEES_INTEREST_PRINCIPAL):
        raise ValueError(f"an order names fees, interest and principal once each, not {order}")
    left = payment
    paid: dict[str, int] = {}
    remaining: dict[str, int] = {}
    for part in order:
        due = getattr(owed, part)
        paid[part] = min(due, left)
        remaining[part] = due - paid[part]
        left -= paid[part]
    return Allocation(
        fees=paid["fees"],
        interest=paid["interest"],
        principal=paid["principal"],
        overpayment=left,
        remaining=Owed(**remaining),
    )
