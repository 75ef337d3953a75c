"""The Swedish collection rules a policy must respect (DOMAIN.md), as data, not constants.

Amounts are minor units of SEK. The law's figures change rarely but do change; a client in
another country gets another instance of `Rules`, and tests pin the Swedish one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rules:
    reminder_fee_cap: int = 6_000  # påminnelseavgift, once per claim, only after due
    collection_fee_cap: int = 18_000  # inkassokrav, once per debt
    b2b_compensation: int = 45_000  # förseningsersättning, instead of the fees, never B2C
    min_collection_deadline_days: int = 8  # from sending the inkassokrav
    plan_setup_fee_cap: int = 17_000  # avbetalningsplan
    plan_notice_fee_cap: int = 6_000
    enforcement_fee: int = 30_000  # Kronofogden application
    statutory_margin_bp: int = 800  # dröjsmålsränta: reference rate + 8 percentage points


SWEDEN = Rules()
