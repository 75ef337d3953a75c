"""Letters as PDF: the reminder or inkassokrav a debtor gets by post, and the email's
attachment.

The text is the message's plain body (`<kind>.body.txt`), so a letter and an email say the
same thing and a tenant's template override changes both. The PDF embeds (a subset of)
DejaVu Sans: the PDF core fonts are not embedded, which print-and-mail houses refuse, and
cover Latin-1 only, while a debtor's name may carry any letter. reportlab parses the font
once per process and subsets it per letter (about 15 ms a letter here, against about
500 ms for fpdf2, which parses the font again for every document). `invariant` output
makes the bytes a function of the message alone: rendering the same message twice gives
the same file, so the engine can store a letter once and a retry finds the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from functools import cache
from pathlib import Path

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from backend.channels.message import Message, check
from backend.channels.templates import Templates, one_line, templates_for

FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/TTF"),
    Path("/usr/local/share/fonts"),
)
REGULAR, BOLD = "KravlabDejaVuSans", "KravlabDejaVuSans-Bold"
FONT_FILES = {REGULAR: "DejaVuSans.ttf", BOLD: "DejaVuSans-Bold.ttf"}
_TITLES = {
    ("sv", "reminder"): "Påminnelse",
    ("en", "reminder"): "Reminder",
    ("sv", "collection_notice"): "Inkassokrav",
    ("en", "collection_notice"): "Collection notice",
}
_DATE = {"sv": "Datum", "en": "Date"}
_PAGE = {"sv": "Sida", "en": "Page"}
PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN = 20 * mm
TEXT_WIDTH = PAGE_WIDTH - 2 * MARGIN
WINDOW_X, WINDOW_Y = 110 * mm, PAGE_HEIGHT - 50 * mm  # C5 window envelope, right
WINDOW_WIDTH = 80 * mm


class FontMissing(RuntimeError):
    """DejaVu Sans is not installed (Debian: fonts-dejavu-core; `make install` adds it)."""


def font_path(name: str) -> Path:
    for directory in FONT_DIRS:
        candidate = directory / FONT_FILES[name]
        if candidate.is_file():
            return candidate
    raise FontMissing(
        f"{FONT_FILES[name]} not found in {', '.join(map(str, FONT_DIRS))}: "
        "install fonts-dejavu-core (bash infra/fonts.sh)"
    )


@cache
def _register_fonts() -> None:
    for name in FONT_FILES:
        pdfmetrics.registerFont(TTFont(name, str(font_path(name))))


def render_letter(
    message: Message,
    overrides: Mapping[str, str] | None = None,
    templates: Templates | None = None,
) -> bytes:
    """The letter for this message as PDF bytes, laid out for a C5 window envelope."""
    message = check(message)
    rendered = (templates or templates_for(overrides)).render_message(message)
    _register_fonts()
    buffer = io.BytesIO()
    canvas = Canvas(
        buffer, pagesize=A4, invariant=True, pageCompression=True, initialFontName=REGULAR
    )
    canvas.setTitle(rendered.subject)
    canvas.setAuthor(one_line(message.creditor.name))
    canvas.setSubject(f"{message.kind} {message.invoice_number}")
    pen = _Pen(canvas, message.language)

    # Sender block, top left; the date on the right.
    pen.at(MARGIN, PAGE_HEIGHT - MARGIN, 90 * mm)
    pen.write(one_line(message.creditor.name), BOLD, 11)
    for line in (*message.creditor.address, message.creditor.org_number):
        if line.strip():
            pen.write(one_line(line), REGULAR, 9)
    canvas.setFont(REGULAR, 9)
    canvas.drawRightString(
        PAGE_WIDTH - MARGIN,
        PAGE_HEIGHT - MARGIN - 9,
        f"{_DATE[message.language]}: {message.sent_on.isoformat()}",
    )

    # The recipient where a window envelope shows it; `one_line` keeps a line break a
    # client's ERP left in a name from pushing the address out of the window.
    pen.at(WINDOW_X, WINDOW_Y, WINDOW_WIDTH)
    for line in (message.debtor.name, *message.debtor.address):
        pen.write(one_line(line), REGULAR, 10)

    pen.at(MARGIN, PAGE_HEIGHT - 95 * mm, TEXT_WIDTH)
    pen.write(_TITLES[(message.language, message.kind)], BOLD, 14)
    pen.skip(4)
    for paragraph in rendered.text.split("\n"):
        pen.write(paragraph, REGULAR, 10)
    pen.finish()
    canvas.save()
    return buffer.getvalue()


class _Pen:
    """Writes wrapped lines downwards, starting a new page at the bottom margin."""

    def __init__(self, canvas: Canvas, language: str) -> None:
        self.canvas, self.language = canvas, language
        self.x = self.y = self.width = 0.0
        self.page = 1

    def at(self, x: float, y: float, width: float) -> None:
        self.x, self.y, self.width = x, y, width

    def skip(self, points: float) -> None:
        self.y -= points

    def write(self, text: str, font: str, size: float) -> None:
        leading = size * 1.35
        for line in _wrap(text, font, size, self.width):
            if self.y - leading < MARGIN:
                self._footer()
                self.canvas.showPage()
                self.page += 1
                self.y = PAGE_HEIGHT - MARGIN
            self.y -= leading
            self.canvas.setFont(font, size)
            self.canvas.drawString(self.x, self.y, line)

    def finish(self) -> None:
        if self.page > 1:
            self._footer()

    def _footer(self) -> None:
        self.canvas.setFont(REGULAR, 8)
        self.canvas.drawRightString(
            PAGE_WIDTH - MARGIN, MARGIN / 2, f"{_PAGE[self.language]} {self.page}"
        )


def _wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """Lines no wider than `width`: at spaces where possible, inside a word that is wider
    than a line by itself (a 200-letter name must stay on the paper)."""
    if not text.strip():
        return [""]
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if pdfmetrics.stringWidth(candidate, font, size) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = ""
        for char in word:
            if pdfmetrics.stringWidth(current + char, font, size) > width and current:
                lines.append(current)
                current = ""
            current += char
    lines.append(current)
    return lines
