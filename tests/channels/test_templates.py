"""Templates: money shown per currency and language, tenant overrides, previews, and
tenant templates that cannot run code, loop for ever or print a missing field as nothing."""

from __future__ import annotations

import pytest

from backend.channels.amounts import format_amount, format_rate
from backend.channels.message import Debtor, MessageError
from backend.channels.templates import (
    TemplateProblem,
    Templates,
    one_line,
    preview,
    template_names,
)
from tests.channels.messages import message, notice

NB = "\u00a0"


@pytest.mark.parametrize(
    ("minor", "currency", "language", "shown"),
    [
        (123_450, "SEK", "sv", "1 234,50 kr"),
        (123_450, "SEK", "en", "SEK 1,234.50"),
        (5, "SEK", "sv", "0,05 kr"),
        (0, "SEK", "sv", "0,00 kr"),
        (123_456_789, "EUR", "sv", "1 234 567,89 EUR"),
        (1_234, "JPY", "sv", "1 234 JPY"),
        (1_234, "JPY", "en", "JPY 1,234"),
        (1_234_567, "BHD", "en", "BHD 1,234.567"),
    ],
)
def test_money_is_shown_with_the_currencys_own_decimals(minor, currency, language, shown):
    assert format_amount(minor, currency, language).replace(NB, " ") == shown


def test_rates_and_points():
    assert format_rate(1_000, "sv").replace(NB, " ") == "10,00 %"
    assert format_rate(1_050, "en") == "10.50%"
    assert format_rate(800, "sv", percent_sign=False) == "8,00"


@pytest.mark.parametrize("kind", ["reminder", "collection_notice"])
@pytest.mark.parametrize("language", ["sv", "en"])
def test_every_default_template_renders_for_every_kind_and_language(kind, language):
    rendered = preview(message(kind=kind, language=language, fee=0, pay_by=notice().pay_by))
    assert rendered.subject and rendered.text and rendered.sms and rendered.interest
    assert rendered.html.startswith("<!DOCTYPE html>") and f'lang="{language}"' in rendered.html
    assert "F-2026-0042" in rendered.subject + rendered.text + rendered.sms
    script = Templates().render_call_script(message(kind=kind, language=language))
    assert "Märta Ångström" in script and "20260042" in script


def test_a_tenant_override_replaces_one_template_and_keeps_the_others():
    overrides = {"sv/reminder.subject.txt": "Glömt oss, {{ debtor.name }}? ({{ total }})"}
    rendered = preview(message(), overrides)
    assert rendered.subject.replace(NB, " ") == "Glömt oss, Märta Ångström? (1 304,65 kr)"
    assert rendered.text == preview(message()).text
    assert preview(message(language="en"), overrides).subject.startswith("Reminder:")


def test_a_missing_field_fails_loudly():
    with pytest.raises(TemplateProblem, match="debtor_name"):
        preview(message(), {"sv/reminder.sms.txt": "Hej {{ debtor_name }}"})
    with pytest.raises(TemplateProblem, match="nickname"):
        preview(message(), {"sv/reminder.sms.txt": "Hej {{ debtor.nickname }}"})


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ debtor.name.__class__.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{% set x = debtor.address.append('x') %}{{ x }}",
        "{{ range.__globals__ }}",
    ],
)
def test_a_tenant_template_cannot_reach_python(source):
    with pytest.raises(TemplateProblem):
        preview(message(), {"sv/reminder.body.txt": source})


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("{% for i in range(100) %}{% for j in range(100) %}x{% endfor %}{% endfor %}", "nested"),
        ("{% for i in range(10**9) %}{% endfor %}", "range"),
        ("{% macro m(n) %}{{ m(n) }}{% endmacro %}{{ m(1) }}", "macro"),
        ("{% for i in range(99) %}{{ 'x' * 1000 }}{% endfor %}", "output beyond"),
        ("{{ 'x' * 10**9 }}", "repetition"),
        ("{{ 2 ** 100000 }}", "exponent"),
        ("{{ ((10 ** 64) ** 64) ** 64 }}", "exponent"),
        ("{{ debtor.name.center(10**9) }}", "center"),
        ("{{ 'x' | center(10**9) }}", "center"),
        ("{{ '%999999999s' | format('x') }}", "format"),
        ("{% set ns = namespace(s='x') %}{{ ns.s }}", "namespace"),
        ("{% if %}", "sv/reminder.body.txt"),
        ("x" * 20_001, "more than"),
    ],
)
def test_a_tenant_template_cannot_run_for_ever_or_grow_without_bound(source, match):
    with pytest.raises(TemplateProblem, match=match):
        preview(message(), {"sv/reminder.body.txt": source})


def test_only_known_templates_can_be_overridden():
    assert "sv/reminder.subject.txt" in template_names() and "en/call.txt" in template_names()
    with pytest.raises(TemplateProblem, match="not a template name"):
        Templates({"../../etc/passwd": "x"})


def test_user_data_is_never_template_source_and_html_is_escaped():
    hostile = message(
        debtor=Debtor(
            name="{{ 7*7 }} <img src=x onerror=alert(1)>",
            email="m@example.se",
            phone="+46700000000",
        )
    )
    rendered = preview(hostile)
    assert "{{ 7*7 }} <img src=x onerror=alert(1)>" in rendered.text
    assert "<img" not in rendered.html and "&lt;img src=x onerror=alert(1)&gt;" in rendered.html
    assert "&lt;" not in rendered.sms  # plain text is not HTML-escaped


def test_subjects_are_one_bounded_line():
    assert one_line("a\r\nBcc: b\u2028c\x00d") == "a Bcc: b c d"
    long = preview(message(invoice_number="F" * 64), {"sv/reminder.subject.txt": "{{ 'x' * 500 }}"})
    assert len(long.subject) == 200 and "\n" not in long.subject


def test_a_preview_fails_exactly_where_sending_would():
    with pytest.raises(MessageError, match=r"debtor\.email"):
        preview(message(debtor=Debtor(name="N", phone="+46700000000")))


def test_an_sms_template_longer_than_six_segments_is_refused_not_cut():
    with pytest.raises(TemplateProblem, match="at most 918"):
        preview(message(), {"sv/reminder.sms.txt": "{{ 'x' * 920 }} ref {{ payment.reference }}"})
    fits = preview(
        message(), {"sv/reminder.sms.txt": "{{ 'x' * 800 }} ref {{ payment.reference }}"}
    )
    assert fits.sms.endswith("ref 20260042")
