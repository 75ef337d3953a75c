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


# Riksbank reference rate (referensränta), basis points, by the half-year it applies from.
# Dröjsmålsränta = reference rate + 8 percentage points. Update each 1 January and 1 July
# (and check these against the Riksbank's published figures before relying on them).
REFERENCE_RATE_BP: tuple[tuple[str, int], ...] = (
    ("2023-01-01", 250),
    ("2023-07-01", 350),
    ("2024-01-01", 400),
    ("2024-07-01", 375),
    ("2025-01-01", 250),
    ("2025-07-01", 200),
)


def reference_rate_bp(
    on: str, table: tuple[tuple[str, int], ...] = REFERENCE_RATE_BP
) -> int | None:
    """The reference rate in force on an ISO date, or None before the table starts."""
    rate = None
    for start, value in table:
        if start <= on:
            rate = value
    return rate
