"""Letters as PDF: the reminder or inkassokrav a debtor gets by post, and the email's
attachment.

The text is the message's plain body (`<kind>.body.txt`), so a letter and an email say the
same thing and a tenant's template override changes both. The PDF embeds DejaVu Sans: the
PDF core fonts cover Latin-1 only on paper, and a Swedish letter needs å, ä, ö in names
and addresses as well as any other letter a debtor's name may carry. The creation date is
the sending date, so rendering the same message twice gives the same bytes (the engine can
store a letter once and a retry finds the same file).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from functools import cache
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from backend.channels.message import Message, check
from backend.channels.templates import Templates

FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/TTF"),
    Path("/usr/local/share/fonts"),
)
FONT_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf"}
_TITLES = {
    ("sv", "reminder"): "Påminnelse",
    ("en", "reminder"): "Reminder",
    ("sv", "collection_notice"): "Inkassokrav",
    ("en", "collection_notice"): "Collection notice",
}
_DATE = {"sv": "Datum", "en": "Date"}


class FontMissing(RuntimeError):
    """DejaVu Sans is not installed (Debian: fonts-dejavu-core; `make install` adds it)."""


@cache
def font_path(style: str) -> Path:
    for directory in FONT_DIRS:
        candidate = directory / FONT_FILES[style]
        if candidate.is_file():
            return candidate
    raise FontMissing(
        f"{FONT_FILES[style]} not found in {', '.join(map(str, FONT_DIRS))}: "
        "install fonts-dejavu-core (bash infra/fonts.sh)"
    )


def render_letter(
    message: Message,
    overrides: Mapping[str, str] | None = None,
    templates: Templates | None = None,
) -> bytes:
    """The letter for this message as PDF bytes, laid out for a C5 window envelope."""
    message = check(message)
    templates = templates or Templates(overrides)
    rendered = templates.render_message(message)
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_creation_date(dt.datetime.combine(message.sent_on, dt.time(), tzinfo=dt.UTC))
    pdf.set_title(rendered.subject)
    pdf.set_author(message.creditor.name[:200])
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(auto=True, margin=20)
    for style in FONT_FILES:
        pdf.add_font("DejaVu", style, str(font_path(style)))
    pdf.add_page()

    pdf.set_font("DejaVu", "B", 11)
    pdf.multi_cell(
        100, 5, rendered_name(message.creditor.name), new_x=XPos.LMARGIN, new_y=YPos.NEXT
    )
    pdf.set_font("DejaVu", "", 9)
    for line in (*message.creditor.address, message.creditor.org_number):
        if line.strip():
            pdf.multi_cell(100, 4.5, rendered_name(line), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_xy(120, 20)
    pdf.cell(70, 5, f"{_DATE[message.language]}: {message.sent_on.isoformat()}", align="R")

    # The recipient's block where a window envelope shows it.
    pdf.set_xy(110, 45)
    pdf.set_font("DejaVu", "", 10)
    for line in (message.debtor.name, *message.debtor.address):
        pdf.set_x(110)
        pdf.multi_cell(80, 5, rendered_name(line), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    pdf.set_xy(20, 90)
    pdf.set_font("DejaVu", "B", 14)
    pdf.cell(0, 8, _TITLES[(message.language, message.kind)], new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)
    pdf.set_font("DejaVu", "", 10)
    pdf.multi_cell(0, 5, rendered.text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())


def rendered_name(value: str) -> str:
    """One line as the letter prints it: line breaks a client's ERP left in a name or an
    address line become spaces instead of moving the next line out of the window."""
    return " ".join(value.split())[:200]
