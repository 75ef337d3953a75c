"""The import's own rules on a history's arrays, and the line each problem is put on
(`backend.imports.validate`, no database)."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.imports import ImportFailed, validate

HEADER = "invoice_id,debtor_id,debtor_type,issue_date,due_date,amount,currency\n"
ROW = "{id},{debtor},b2c,2025-01-02,2025-02-01,10.00,SEK\n"


def _history(folder: Path, invoices: str) -> Path:
    folder.mkdir()
    (folder / "invoices.csv").write_text(invoices)
    (folder / "payments.csv").write_text("invoice_id,paid_date,amount\n")
    return folder


def _problems(folder: Path, currency: str = "SEK") -> list[tuple[str, int, str]]:
    with pytest.raises(ImportFailed) as failed:
        validate(folder, currency)
    return [(p.file, p.line, p.column) for p in failed.value.problems.listed]


def test_a_clean_history_passes(tmp_path):
    history = validate(_history(tmp_path / "h", HEADER + ROW.format(id="A", debtor="C")), "SEK")
    assert history.size == 1


@pytest.mark.parametrize("bad_id", ["=1+1", "+46", "-2", "@SUM(A1)", "a\x07b", "x" * 129])
def test_identifiers_a_spreadsheet_would_run_or_the_book_cannot_hold(tmp_path, bad_id):
    quoted = '"' + bad_id + '"'
    rows = ROW.format(id="A", debtor="C") + ROW.format(id=quoted, debtor=quoted)
    assert _problems(_history(tmp_path / "h", HEADER + rows)) == [
        ("invoices.csv", 3, "invoice_id"),
        ("invoices.csv", 3, "debtor_id"),
    ]


def test_lines_are_counted_as_the_history_loader_counts_them(tmp_path):
    """Blank lines are skipped but keep their numbers: the problem lands on the line
    `load_history` would name."""
    rows = (
        ROW.format(id="A", debtor="C")
        + "\n"
        + ROW.format(id="B", debtor="C")
        + ROW.format(id="=C", debtor="C")
    )
    assert _problems(_history(tmp_path / "h", HEADER + rows)) == [("invoices.csv", 5, "invoice_id")]


def test_the_tenants_currency_and_one_type_per_debtor(tmp_path):
    rows = ROW.format(id="A", debtor="C") + ROW.format(id="B", debtor="C").replace("b2c", "b2b")
    folder = _history(tmp_path / "h", HEADER + rows)
    assert _problems(folder, currency="EUR") == [
        ("invoices.csv", 2, "currency"),
        ("invoices.csv", 3, "debtor_type"),
    ]
