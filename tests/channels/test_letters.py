"""Letters as PDF, read back with pypdf: every element a reminder and an inkassokrav must
state (DOMAIN.md), in Swedish and English, with å, ä, ö as text, not as missing glyphs."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from pypdf import PdfReader

from backend.channels.letters import render_letter
from backend.channels.message import Debtor, Interest, MessageError
from tests.channels.messages import SENT_ON, message, notice


def text_of(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    text = "\n".join(page.extract_text() for page in reader.pages)
    return " ".join(text.replace("\u00a0", " ").split())


REMINDER = {
    "sv": [
        "Påminnelse",
        "Åkesson & Öberg AB",
        "Märta Ångström",
        "Västra vägen 3 222 33 Göteborg",
        "faktura F-2026-0042",
        "förföll till betalning 2026-02-01",
        "Fakturabelopp: 1 234,50 kr",
        "Påminnelseavgift: 60,00 kr",
        "Dröjsmålsränta hittills 10,15 kr",
        "10,00 % per år (referensräntan 2,00 % + 8,00 procentenheter",
        "på 1 234,50 kr från förfallodagen 2026-02-01",
        "Att betala: 1 304,65 kr",
        "Betala senast 2026-03-12 till bankgiro 5555-1234 och ange referens 20260042",
        "anser du att den är felaktig, kontakta oss på fragor@akesson.se",
        "telefon 08-123 456 78",
    ],
    "en": [
        "Reminder",
        "Åkesson & Öberg AB",
        "Märta Ångström",
        "invoice F-2026-0042",
        "due on 2026-02-01",
        "Invoice amount: SEK 1,234.50",
        "Reminder fee: SEK 60.00",
        "Late interest so far SEK 10.15",
        "10.00% a year (the reference rate 2.00% + 8.00 percentage points",
        "on SEK 1,234.50 from the due date 2026-02-01",
        "Amount to pay: SEK 1,304.65",
        "Please pay by 2026-03-12 to bankgiro 5555-1234, quoting reference 20260042",
        "believe it is wrong, contact us at fragor@akesson.se",
    ],
}

NOTICE = {
    "sv": [
        "Inkassokrav",
        "Borgenär: Åkesson & Öberg AB (org.nr 556677-8899)",
        "Fordran: faktura F-2026-0042 daterad 2026-01-02, förfallodag 2026-02-01",
        "Kapitalbelopp: 1 234,50 kr",
        "Inkassoavgift: 180,00 kr",
        "Tidigare avgifter: 60,00 kr",
        "Dröjsmålsränta hittills 10,15 kr",
        "referensräntan 2,00 % + 8,00 procentenheter enligt räntelagen",
        "Att betala: 1 484,65 kr",
        "Betala senast 2026-03-10 till bankgiro 5555-1234 och ange referens 20260042",
        "ansöka om betalningsföreläggande hos Kronofogden",
        "Anser du att kravet är felaktigt, kontakta oss före 2026-03-10",
    ],
    "en": [
        "Collection notice",
        "Creditor: Åkesson & Öberg AB (reg. no. 556677-8899)",
        "Claim: invoice F-2026-0042 dated 2026-01-02, due date 2026-02-01",
        "Principal: SEK 1,234.50",
        "Collection fee: SEK 180.00",
        "Earlier fees: SEK 60.00",
        "Late interest so far SEK 10.15",
        "the reference rate 2.00% + 8.00 percentage points",
        "Amount to pay: SEK 1,484.65",
        "Pay by 2026-03-10 to bankgiro 5555-1234, quoting reference 20260042",
        "apply to the Swedish Enforcement Authority (Kronofogden)",
        "If you believe the claim is wrong, contact us before 2026-03-10",
    ],
}


@pytest.mark.parametrize("language", ["sv", "en"])
def test_a_reminder_letter_states_every_element(language):
    text = text_of(render_letter(message(channel="letter", language=language)))
    missing = [part for part in REMINDER[language] if part not in text]
    assert missing == [], text


@pytest.mark.parametrize("language", ["sv", "en"])
def test_a_collection_notice_states_what_the_law_asks(language):
    pdf = render_letter(notice(language=language))
    text = text_of(pdf)
    missing = [part for part in NOTICE[language] if part not in text]
    assert missing == [], text
    assert PdfReader(io.BytesIO(pdf)).metadata.title.startswith(NOTICE[language][0])


def test_a_collection_notice_deadline_shorter_than_eight_days_is_refused():
    with pytest.raises(MessageError, match="at least 8 days") as caught:
        render_letter(notice(pay_by=SENT_ON + dt.timedelta(days=7)))
    assert caught.value.violations[0][0] == "pay_by"


def test_contract_interest_and_unknown_interest_say_how_they_are_computed():
    contract = Interest(
        mode="contract", accrued=2_000, annual_rate_bp=1_800, from_date=dt.date(2026, 2, 1),
        basis=123_450,
    )  # fmt: skip
    text = text_of(render_letter(message(channel="letter", interest=contract)))
    assert "avtalad ränta 18,00 % per år på 1 234,50 kr från 2026-02-01" in text
    unknown = Interest(mode="statutory", accrued=None, from_date=dt.date(2026, 2, 1), basis=123_450)
    text = text_of(render_letter(message(channel="letter", language="en", interest=unknown)))
    assert "the interest amount is unknown and not included in the total" in text
    assert "Amount to pay: SEK 1,294.50" in text  # principal + fee, no invented interest


def test_the_same_message_gives_the_same_bytes():
    assert render_letter(notice()) == render_letter(notice())


def test_every_problem_is_listed_with_its_path():
    bad = notice(
        fee=20_000,
        pay_by=SENT_ON,
        payment=message().payment.__class__(reference="R1"),
        dispute=message().dispute.__class__(),
    )
    with pytest.raises(MessageError) as caught:
        render_letter(bad)
    assert {path for path, _ in caught.value.violations} == {"pay_by", "fee", "payment", "dispute"}


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"invoice_number": "F" * 65}, "invoice_number"),
        ({"currency": "sek"}, "currency"),
        ({"currency": "XAU"}, "currency"),
        ({"amount": -1}, "amount"),
        ({"fee": 6_000, "sent_on": dt.date(2026, 2, 1)}, "fee"),
    ],
)
def test_bounds_and_formats_are_checked(changes, path):
    with pytest.raises(MessageError) as caught:
        render_letter(message(channel="letter", **changes))
    assert caught.value.violations[0][0] == path


def test_markup_and_line_breaks_in_names_stay_text():
    hostile = message(
        channel="letter",
        debtor=message().debtor.__class__(
            name="{{ 7*7 }}\n<script>x</script>", address=("{% raw %}Gata 1",)
        ),
    )
    text = text_of(render_letter(hostile))
    assert "{{ 7*7 }} <script>x</script>" in text and "49" not in text
    assert "{% raw %}Gata 1" in text


def test_names_beyond_latin_1_are_embedded_and_extractable():
    foreign = message(
        channel="letter",
        debtor=Debtor(name="Łukasz Wójcik-Nguyễn Σωκράτης", address=("ul. Żółta 5", "Kraków")),
    )
    pdf = render_letter(foreign)
    text = text_of(pdf)
    assert "Łukasz Wójcik-Nguyễn Σωκράτης" in text and "ul. Żółta 5" in text
    fonts = PdfReader(io.BytesIO(pdf)).pages[0]["/Resources"]["/Font"]
    assert all("/FontFile2" in f.get_object()["/FontDescriptor"] for f in _descendants(fonts))


def _descendants(fonts):
    for ref in fonts.values():
        font = ref.get_object()
        yield from (d.get_object() for d in font.get("/DescendantFonts", [font]))


def test_a_long_letter_runs_onto_numbered_pages_and_a_long_word_wraps():
    body = "\n\n".join(f"Stycke {i}: " + "lång text " * 40 for i in range(30))
    overrides = {"sv/reminder.body.txt": body + "\n\n" + "Ö" * 300 + "\n\nSLUT"}
    pdf = render_letter(message(channel="letter"), overrides)
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) >= 3
    assert "Sida 2" in reader.pages[1].extract_text()
    text = text_of(pdf)
    assert "Stycke 29" in text and "SLUT" in text and text.count("Ö") >= 300
