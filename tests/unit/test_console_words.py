"""The console's words and numbers: every key a template asks for exists in both
languages, money is written from integer minor units the way each language writes it, and
the demo's printout leads to the console."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import get_args, get_type_hints

import pytest
from rich.console import Console

from frontend_api import i18n
from frontend_api.schemas import Alert

ALERT_KINDS = get_args(get_type_hints(Alert)["kind"])

TEMPLATES = Path(__file__).resolve().parents[2] / "frontend_api" / "templates"


def test_every_key_the_templates_use_is_translated():
    used = set()
    for template in TEMPLATES.glob("*.html"):
        used |= set(re.findall(r"""\bt\(\s*["'](\w+)["']\s*\)""", template.read_text()))
    assert used, "no t() calls found: the pattern is stale"
    missing = sorted(k for k in used if k not in i18n.TEXT and k not in i18n.STATUS_KEYS)
    assert not missing
    # Keys built from values (t("outcome_" ~ o), t("call_" ~ o), t("timeline_" ~ kind)).
    for prefix, values in (
        ("outcome_", ["paid", "plan", "written_off", "enforcement"]),
        ("call_", ["reached", "promise_to_pay", "dispute", "no_answer"]),
        ("timeline_", ["payment", "contact", "pause", "resume", "dispute", "resolve", "plan"]),
        ("alert_", ALERT_KINDS),
    ):
        for value in values:
            assert prefix + value in i18n.TEXT


def test_both_languages_differ_where_they_should():
    sv, en = i18n.translator("sv"), i18n.translator("en")
    assert sv("outstanding") == "Utestående" and en("outstanding") == "Outstanding"
    assert i18n.translator("xx")("outstanding") == "Utestående"  # unknown: the default
    assert sv("no_such_key") == "no_such_key"


@pytest.mark.parametrize(
    ("minor", "lang", "decimals", "expected"),
    [
        (123_456_789, "sv", False, "1\u00a0234\u00a0568\u00a0kr"),
        (123_456_789, "en", False, "SEK\u00a01,234,568"),
        (123_456, "sv", True, "1\u00a0234,56\u00a0kr"),
        (123_456, "en", True, "SEK\u00a01,234.56"),
        (-5, "sv", True, "−0,05\u00a0kr"),
        (0, "en", False, "SEK\u00a00"),
        (None, "sv", False, "–"),
        (2**63 - 1, "sv", True, "92\u00a0233\u00a0720\u00a0368\u00a0547\u00a0758,07\u00a0kr"),
    ],
)
def test_money_is_exact_from_minor_units(minor, lang, decimals, expected):
    assert i18n.money(minor, "SEK", lang, decimals) == expected


@pytest.mark.parametrize(
    ("minor", "currency", "lang", "decimals", "expected"),
    [
        (1_234, "JPY", "en", True, "JPY\u00a01,234"),  # the yen has no minor unit
        (1_234, "JPY", "sv", False, "1\u00a0234\u00a0JPY"),
        (1_234_567, "BHD", "en", True, "BHD\u00a01,234.567"),
        (1_500, "BHD", "en", False, "BHD\u00a02"),
        (1_499, "BHD", "sv", False, "1\u00a0BHD"),
        (12_345, "EUR", "sv", True, "123,45\u00a0EUR"),
    ],
)
def test_money_takes_the_currencys_own_exponent(minor, currency, lang, decimals, expected):
    assert i18n.money(minor, currency, lang, decimals) == expected


def test_numbers_and_days():
    assert i18n.number(12.25, "sv") == "12,2" or i18n.number(12.25, "sv") == "12,3"
    assert i18n.number(1234.5, "en") == "1,234.5"
    assert i18n.number(None, "en") == "–"


def test_the_demo_prints_the_console_first():
    from backend.demo import print_credentials

    out = io.StringIO()
    credentials = {
        "admin": {"email": "admin@kravlab.demo", "password": "pw"},
        "tenants": [
            {
                "id": "t1",
                "name": "T",
                "admin": {"email": "a@t.demo", "password": "p"},
                "api_key": "kl_x",
            }
        ],
    }
    print_credentials(Console(file=out, width=200), credentials, "127.0.0.1", 8000)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    assert "http://127.0.0.1:8000/console" in lines[1]
