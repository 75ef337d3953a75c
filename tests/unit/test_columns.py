"""The byte-column fast path of the history loader: it gives exactly what the row-by-row
path gives, or declines; it never decides anything the row path would decide otherwise."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from simulator.columns import read_columns
from simulator.history import (
    ACTION_COLUMNS,
    History,
    HistoryError,
    _load_checked,
    _load_clean,
    day_number,
    load_history,
)
from simulator.worlds import generate, write

HEADER = "invoice_id,debtor_id,debtor_type,issue_date,due_date,amount,currency,e_invoice,disputed,fee_agreed"


def assert_same(fast: History, slow: History) -> None:
    for field in dataclasses.fields(History):
        a, b = getattr(fast, field.name), getattr(slow, field.name)
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype, field.name
            assert np.array_equal(a, b), field.name
        else:
            assert a == b, field.name


def history(
    tmp_path: Path,
    invoices: str,
    payments: str = "",
    actions: str | None = None,
    *,
    newline: str = "\n",
    header: str = HEADER,
) -> Path:
    def put(name: str, text: str) -> None:
        (tmp_path / name).write_bytes(text.replace("\n", newline).encode())

    put("invoices.csv", header + "\n" + invoices)
    put("payments.csv", "invoice_id,paid_date,amount\n" + payments)
    if actions is not None:
        put("actions.csv", ",".join(ACTION_COLUMNS) + "\n" + actions)
    return tmp_path


def both(folder: Path) -> History:
    fast = _load_clean(folder, None)
    assert fast is not None, "the fast path declined a plain file"
    assert_same(fast, _load_checked(folder, None))
    return fast


@pytest.mark.parametrize("world", ["retail-b2c", "wholesale-b2b"])
def test_a_generated_world_loads_identically_both_ways(tmp_path, world):
    write(generate(world, 3000, 5), tmp_path)  # Python's csv writer: CRLF line ends
    assert b"\r\n" in (tmp_path / "invoices.csv").read_bytes()
    h = both(tmp_path)
    assert h.size == 3000 and len(h.act_day) > 0 and len(h.pay_day) > 0


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_plain_variants_take_the_fast_path_and_agree(tmp_path, newline):
    invoices = (
        "A-1,Åkesson AB,b2b,2024-02-29,2024-03-30,5,SEK,true,,false\n"
        "INVOICE-NUMBER-0000000000002,Åkesson AB,b2b,2024-12-31,2025-01-30,5.5,SEK,,true,\n"
        "3,C,b2c,2000-01-01,2000-01-31,0.01,SEK,false,false,true\n"
        "4,Ünal,b2c,1999-12-31,2100-02-28,9999999999999.99,SEK,,,\n"
    )
    payments = "A-1,2024-03-01,5.00\nINVOICE-NUMBER-0000000000002,2025-02-01,2\n3,2000-02-01,0.01\n"
    actions = "A-1,2024-03-31,reminder,sms,60\n3,2000-02-05,collection_notice,letter,180.5\n3,2000-03-01,escalation,,\n"
    folder = history(tmp_path, invoices, payments, actions, newline=newline)
    h = both(folder)
    assert h.amount.tolist() == [500, 550, 1, 999_999_999_999_999]
    assert h.invoice_id.tolist()[1] == "INVOICE-NUMBER-0000000000002"
    assert h.debtor.tolist() == [0, 0, 1, 2] and h.debtor_ids.tolist() == [
        "Åkesson AB",
        "C",
        "Ünal",
    ]
    assert h.act_fee.tolist() == [6000, 18050, 0]
    assert h.issue[0] == day_number(date(2024, 2, 29))


def test_reordered_columns_without_flags_a_bom_and_no_final_newline(tmp_path):
    header = "currency,amount,due_date,issue_date,debtor_type,debtor_id,invoice_id"
    folder = history(tmp_path, "SEK,10.00,2025-02-01,2025-01-01,b2c,D,X", header=header)
    (folder / "invoices.csv").write_bytes(b"\xef\xbb\xbf" + (folder / "invoices.csv").read_bytes())
    h = both(folder)
    assert h.size == 1 and h.amount[0] == 1000 and not h.e_invoice[0]


@pytest.mark.parametrize(
    "row",
    [
        "A,C,B2C,2025-01-01,2025-01-31,10,SEK,,,",  # case the row path lowers
        "A,C,b2c,2025-01-01,2025-01-31, 10,SEK,,,",  # spaces it strips
        "A , C,b2c,2025-01-01,2025-01-31,10,SEK,,,",
        '"A",C,b2c,2025-01-01,2025-01-31,10,SEK,,,',  # quoting
        "A,C,b2c,2025-01-01,2025-01-31,+10,SEK,,,",  # a sign
        "A,C,b2c,2025-01-01,2025-01-31,10,sek,,,",
        "A,C,b2c,2025-01-01,2025-01-31,10,SEK,1,yes,",  # the other spellings of true
    ],
)
def test_lenient_forms_leave_the_fast_path_and_still_load(tmp_path, row):
    folder = history(tmp_path, row + "\n", "A,2025-02-01,10\n")
    assert _load_clean(folder, None) is None
    h = load_history(folder)
    assert h.size == 1 and h.amount[0] == 1000 and h.currency == "SEK" and h.settled[0] >= 0


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("A,C,b2c,2025-02-29,2025-03-31,10,SEK,,,", "not a date (YYYY-MM-DD): '2025-02-29'"),
        ("A,C,b2c,2025-04-31,2025-05-31,10,SEK,,,", "not a date (YYYY-MM-DD): '2025-04-31'"),
        ("A,C,b2c,0000-01-01,2025-05-31,10,SEK,,,", "not a date (YYYY-MM-DD): '0000-01-01'"),
        (
            "A,C,b2c,2025-01-01,2025-01-31,10.,SEK,,,",
            "not an amount with at most 2 decimals: '10.'",
        ),
        (
            "A,C,b2c,2025-01-01,2025-01-31,.5,SEK,,,",
            "not an amount with at most 2 decimals: '.5'",
        ),
        (
            "A,C,b2c,2025-01-01,2025-01-31,1.2.3,SEK,,,",
            "not an amount with at most 2 decimals: '1.2.3'",
        ),
        ("A,C,b2c,2025-01-01,2025-01-31,0.00,SEK,,,", "must be greater than 0: '0.00'"),
        ("A,C,b2c,2025-01-01,2025-01-31,99999999999999999999,SEK,,,", "too large an amount"),
        ("A,,b2c,2025-01-01,2025-01-31,10,SEK,,,", "column debtor_id: required"),
        ("A,C,b2c,2025-01-01,2025-01-31,10,SEK,,,,", "expected 10 fields, found 11"),
    ],
)
def test_what_the_fast_path_refuses_the_row_path_names(tmp_path, row, expected):
    folder = history(tmp_path, row + "\n")
    assert _load_clean(folder, None) is None
    with pytest.raises(HistoryError) as caught:
        load_history(folder)
    assert any(expected in str(p) for p in caught.value.problems), caught.value.problems


def test_a_blank_line_or_a_lone_line_feed_in_a_crlf_file_is_not_plain(tmp_path):
    body = "A,C,b2c,2025-01-01,2025-01-31,10,SEK,,,\n"
    folder = history(tmp_path, body + "\n" + body.replace("A,", "B,"))
    assert _load_clean(folder, None) is None
    assert load_history(folder).size == 2  # the row path skips blank lines
    raw = (HEADER + "\r\n" + body.replace("\n", "\r\n") + body.replace("A,", "B,")).encode()
    (folder / "invoices.csv").write_bytes(raw)
    assert _load_clean(folder, None) is None
    assert load_history(folder).size == 2


def test_every_calendar_day_parses_to_its_day_number(tmp_path):
    first = date(1899, 12, 1)
    days = [first + timedelta(days=i) for i in range(0, 80_000, 7)] + [
        date(2000, 2, 29),
        date(2400, 2, 29),
    ]
    path = tmp_path / "dates.csv"
    path.write_text("d,x\n" + "".join(f"{d.isoformat()},1\n" for d in days))
    columns = read_columns(path, ("d", "x"), ())
    assert columns is not None
    assert columns.days("d").tolist() == [day_number(d) for d in days]


def test_amounts_are_exact_minor_units(tmp_path):
    rng = np.random.default_rng(3)
    texts = [
        f"{int(w)}" + ("" if k == 0 else "." + f"{int(f):02d}"[:k])
        for w, f, k in zip(
            rng.integers(0, 10**13, 2000),
            rng.integers(0, 100, 2000),
            rng.integers(0, 3, 2000),
            strict=True,
        )
    ]
    path = tmp_path / "amounts.csv"
    path.write_text("a,x\n" + "".join(f"{t},1\n" for t in texts))
    columns = read_columns(path, ("a", "x"), ())
    assert columns is not None
    assert columns.minor_units("a", 2).tolist() == [int(Decimal(t) * 100) for t in texts]
    assert columns.minor_units("a", 3).tolist() == [int(Decimal(t) * 1000) for t in texts]


def test_amounts_take_no_more_decimals_than_the_currency_has(tmp_path):
    path = tmp_path / "amounts.csv"
    path.write_text("a,x\n1250,1\n7,1\n")
    columns = read_columns(path, ("a", "x"), ())
    assert columns is not None
    assert columns.minor_units("a", 0).tolist() == [1250, 7]  # JPY: yen are the minor unit
    path.write_text("a,x\n1250.5,1\n")
    columns = read_columns(path, ("a", "x"), ())
    assert columns is not None
    assert columns.minor_units("a", 0) is None  # declined: the checked path names the problem
    assert columns.minor_units("a", 1).tolist() == [12505]


def test_an_absurdly_long_id_goes_the_row_path_without_a_huge_allocation(tmp_path):
    rows = "".join(f"{i},C,b2c,2025-01-01,2025-01-31,10,SEK,,,\n" for i in range(1000))
    long_id = "X" * 100_000
    folder = history(tmp_path, rows + f"{long_id},C,b2c,2025-01-01,2025-01-31,10,SEK,,,\n")
    assert _load_clean(folder, None) is None
    h = load_history(folder)
    assert h.size == 1001 and h.invoice_id[-1] == long_id
