"""Minor units per currency (ISO 4217 exponents): JPY has none, SEK two, BHD three.

Amounts are integers of minor units everywhere; how many decimals a CSV amount may carry
and how a minor-unit integer is shown both come from here, never from an assumed two.
"""

from __future__ import annotations

from iso4217 import Currency


class UnknownCurrency(ValueError):
    pass


def minor_unit_exponent(code: str) -> int:
    """Decimals of the currency's minor unit; UnknownCurrency for codes ISO 4217 does not
    list or that have no minor unit (gold, SDR: not invoice currencies)."""
    try:
        exponent = Currency(code.upper()).exponent
    except ValueError as exc:
        raise UnknownCurrency(f"not an ISO 4217 currency: {code!r}") from exc
    if exponent is None:
        raise UnknownCurrency(f"{code} has no minor unit: not an invoice currency")
    return int(exponent)


def major(minor: int | float, code: str) -> float:
    """A minor-unit amount in major units (for display)."""
    return minor / 10 ** minor_unit_exponent(code)
