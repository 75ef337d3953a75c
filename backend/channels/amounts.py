"""Money for people to read: minor units shown the way the message's language writes them.

Amounts stay integers of minor units everywhere (DESIGN.md); only the text a debtor reads
is formatted, with the currency's own ISO 4217 exponent (JPY none, SEK two, BHD three).
Swedish groups thousands with a no-break space and writes a decimal comma ("1 234,50 kr"),
so a line break never splits an amount in a letter.
"""

from __future__ import annotations

from simulator.currency import minor_unit_exponent

NBSP = "\u00a0"
# Currencies with a local word Swedish readers expect instead of the ISO code.
_SWEDISH_SYMBOLS = {"SEK": "kr"}


def format_amount(minor: int, currency: str, language: str) -> str:
    """`123450, "SEK", "sv"` -> "1 234,50 kr"; `"en"` -> "SEK 1,234.50"."""
    exponent = minor_unit_exponent(currency)
    sign = "-" if minor < 0 else ""
    whole, fraction = divmod(abs(minor), 10**exponent)
    if language == "sv":
        grouped = f"{whole:,}".replace(",", NBSP)
        number = f"{grouped},{fraction:0{exponent}d}" if exponent else grouped
        return f"{sign}{number}{NBSP}{_SWEDISH_SYMBOLS.get(currency.upper(), currency.upper())}"
    number = f"{whole:,}.{fraction:0{exponent}d}" if exponent else f"{whole:,}"
    return f"{currency.upper()}{NBSP}{sign}{number}"


def format_rate(basis_points: int, language: str, *, percent_sign: bool = True) -> str:
    """An annual rate in basis points: 1000 -> "10,00 %" (sv) or "10.00%" (en); without the
    sign for percentage points ("+ 8,00 procentenheter")."""
    whole, rest = divmod(basis_points, 100)
    number = f"{whole},{rest:02d}" if language == "sv" else f"{whole}.{rest:02d}"
    if not percent_sign:
        return number
    return f"{number}{NBSP}%" if language == "sv" else f"{number}%"
