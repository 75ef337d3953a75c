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


# Riksbank reference rate (referensränta), basis points, by the half-year it applies from:
# the policy rate at the end of the previous half-year rounded up to the next half per
# cent (räntelagen 9 §). Dröjsmålsränta = reference rate + 8 percentage points. A row is
# due every 1 January and 1 July; past the last row's half-year the rate is unknown, and a
# forecast then says so instead of using a stale rate. 2026-01-01 is derived by the rule
# from the policy rate of 1.75 % in force at the end of 2025.
REFERENCE_RATE_BP: tuple[tuple[str, int], ...] = (
    ("2022-01-01", 0),
    ("2022-07-01", 50),
    ("2023-01-01", 250),
    ("2023-07-01", 350),
    ("2024-01-01", 400),
    ("2024-07-01", 400),
    ("2025-01-01", 250),
    ("2025-07-01", 200),
    ("2026-01-01", 200),
)


def reference_rate_bp(
    on: str, table: tuple[tuple[str, int], ...] = REFERENCE_RATE_BP
) -> int | None:
    """The reference rate in force on an ISO date; None before the table starts and after
    the half-year of its last row."""
    rate = None
    for start, value in table:
        if start <= on:
            rate = value
    if table:
        year, month = int(table[-1][0][:4]), int(table[-1][0][5:7])
        ends = f"{year + 1}-01-01" if month >= 7 else f"{year}-07-01"
        if on >= ends:
            return None
    return rate
