"""Loading a history: exact results on a small file, and every problem by file, line and column."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest

from simulator.history import (
    NOT_SETTLED,
    HistoryError,
    _load_clean,
    day_date,
    day_number,
    debtor_record,
    load_history,
)

INVOICES = "invoice_id,debtor_id,debtor_type,issue_date,due_date,amount,currency,e_invoice,disputed,fee_agreed\n"
PAYMENTS = "invoice_id,paid_date,amount\n"
ACTIONS = "invoice_id,date,action,channel,fee\n"


def write(tmp_path: Path, invoices: str, payments: str = "", actions: str | None = None) -> Path:
    (tmp_path / "invoices.csv").write_text(INVOICES + invoices)
    (tmp_path / "payments.csv").write_text(PAYMENTS + payments)
    if actions is not None:
        (tmp_path / "actions.csv").write_text(ACTIONS + actions)
    return tmp_path


def problems(folder: Path, **kwargs) -> list[str]:
    with pytest.raises(HistoryError) as caught:
        load_history(folder, **kwargs)
    return [str(p) for p in caught.value.problems]


def test_a_small_history_loads_exactly(tmp_path):
    folder = write(
        tmp_path,
        "A,C1,b2c,2025-01-02,2025-02-01,1250.00,SEK,true,false,true\n"
        "B,C1,b2c,2025-02-20,2025-03-22,980.5,SEK,,,\n"
        "C,K9,b2b,2025-01-10,2025-02-09,45200,SEK,false,true,false\n",
        "A,2025-02-12,1250.00\nC,2025-02-25,20000.00\nC,2025-03-20,25200.00\n",
        "A,2025-02-09,reminder,letter,60.00\nC,2025-03-01,escalation,,0\n",
    )
    h = load_history(folder)
    assert h.size == 3 and h.currency == "SEK"
    assert h.amount.tolist() == [125_000, 98_050, 4_520_000]  # exact minor units
    assert h.b2c.tolist() == [True, True, False] and h.disputed.tolist() == [False, False, True]
    assert h.debtor.tolist() == [0, 0, 1]
    assert [day_date(d) if d != NOT_SETTLED else None for d in h.settled] == [
        date(2025, 2, 12),
        None,
        date(2025, 3, 20),
    ]
    assert day_date(h.as_of) == date(
        2025, 3, 20
    )  # the last payment; a later due date observes nothing
    assert h.act_fee.tolist() == [6_000, 0] and h.act_channel.tolist()[1] == -1
    issued, overdue, tenure = debtor_record(h)
    # B was issued after A (same debtor, 49 days before); C is its debtor's first invoice.
    assert issued.tolist() == [0, 1, 0] and tenure.tolist() == [0, 49, 0]
    assert overdue.tolist() == [0, 0, 0]


def test_the_shared_example_loads():
    example = Path(__file__).resolve().parents[3] / "shared" / "formats" / "examples" / "history"
    if not example.exists():
        pytest.skip("shared/ is not beside the repository")
    h = load_history(example)
    assert h.size == 5 and len(h.pay_amount) == 5 and len(h.act_day) == 5


def test_debtor_record_means_the_same_whatever_the_history_length_and_never_looks_ahead():
    from simulator.history import History

    n = 5  # a, b, c, e of debtor x; d of debtor y
    h = History(
        as_of=day_number(date(2025, 12, 31)),
        currency="SEK",
        invoice_id=np.array(["a", "b", "c", "d", "e"], dtype=object),
        debtor=np.array([0, 0, 0, 1, 0], dtype=np.int32),
        debtor_ids=np.array(["x", "y"], dtype=object),
        b2c=np.ones(n, bool),
        issue=np.array([0, 10, 40, 40, 0], dtype=np.int32),
        due=np.array([30, 40, 70, 70, 10], dtype=np.int32),
        amount=np.full(n, 100, np.int64),
        e_invoice=np.zeros(n, bool),
        disputed=np.zeros(n, bool),
        fee_agreed=np.zeros(n, bool),
        pay_invoice=np.array([0, 1], dtype=np.int32),
        pay_day=np.array([40, 41], dtype=np.int32),
        pay_amount=np.array([100, 100], dtype=np.int64),
        act_invoice=np.zeros(0, np.int32),
        act_day=np.zeros(0, np.int32),
        act_action=np.zeros(0, np.int8),
        act_channel=np.zeros(0, np.int8),
        act_fee=np.zeros(0, np.int64),
    )
    issued, overdue, tenure = debtor_record(h)
    assert issued.tolist() == [0, 2, 3, 0, 0]  # a and e on day 0 do not precede each other
    assert tenure.tolist() == [0, 10, 40, 0, 0]
    # e (due day 10, never paid) is more than 30 days overdue from day 41 on, not on day 40
    assert overdue.tolist() == [0, 0, 0, 0, 0]
    h.issue[2] = 41
    assert debtor_record(h)[1].tolist() == [0, 0, 1, 0, 0]
    # settled before the issue day: no longer in arrears; settled on it: not yet known
    h.pay_invoice = np.array([0, 1, 4], dtype=np.int32)
    h.pay_day = np.array([40, 41, 41], dtype=np.int32)
    h.pay_amount = np.array([100, 100, 100], dtype=np.int64)
    h.__post_init__()
    assert debtor_record(h)[1].tolist() == [0, 0, 1, 0, 0]
    h.issue[2] = 42
    assert debtor_record(h)[1].tolist() == [0, 0, 0, 0, 0]


@pytest.mark.parametrize(
    ("invoices", "payments", "actions", "expected"),
    [
        (
            "A,C,b2x,2025-01-01,2025-01-31,10,SEK,,,\n",
            "",
            None,
            "invoices.csv:2 column debtor_type: must be b2b or b2c: 'b2x'",
        ),
        (
            "A,C,b2c,2025-13-01,2025-01-31,10,SEK,,,\n",
            "",
            None,
            "invoices.csv:2 column issue_date: not a date (YYYY-MM-DD): '2025-13-01'",
        ),
        (
            "A,C,b2c,2025-02-01,2025-01-31,10,SEK,,,\n",
            "",
            None,
            "invoices.csv:2 column due_date: due_date is before issue_date",
        ),
        (
            "A,C,b2c,2025-01-01,2025-01-31,12.345,SEK,,,\n",
            "",
            None,
            "invoices.csv:2 column amount: not an amount with at most 2 decimals: '12.345'",
        ),
        (
            "A,C,b2c,2025-01-01,2025-01-31,1 000,SEK,,,\n",
            "",
            None,
            "invoices.csv:2 column amount: not an amount with at most 2 decimals: '1 000'",
        ),
        (
            "A,C,b2c,2025-01-01,2025-01-31,1250.5,JPY,,,\n",
            "",
            None,
            "invoices.csv:2 column amount: not an amount with no decimals: '1250.5'",
        ),
        (
            "A,C,b2c,2025-01-01,2025-01-31,10,XYZ,,,\n",
            "",
            None,
            "invoices.csv:2 column currency: not an ISO 4217 code: 'XYZ'",
        ),
        (
            "A,C,b2c,2025-01-01,2025-01-31,10,JPY,,,\n",
            "A,2025-01-20,10.50\n",
            None,
            "payments.csv:2 column amount: not an amount with no decimals: '10.50'",
        ),
        (
            "A,C,b2c,2025-01-01,2025-01-31,0,SEK,,,\n",
            "",
            None,
            "invoices.csv:2 column amount: must be greater than 0: '0'",
        ),
        (
            "A,C,b2c,2025-01-01,2025-01-31,10,SEK,maybe,,\n",
            "",
            None,
            "invoices.csv:2 column e_invoice: must be true or false: 'maybe'",
        ),
        (
            "A,C,b2c,2025-01-01,2025-01-31,10,SEK,,,\nA,C,b2c,2025-01-01,2025-01-31,10,SEK,,,\n",
            "",
            None,
            "invoices.csv:3 column invoice_id: duplicate invoice_id 'A' (first on line 2)",
        ),
        (
            "A,C,b2c,2025-01-01,2025-01-31,10,SEK,,,\nB,C,b2c,2025-01-01,2025-01-31,10,EUR,,,\n",
            "",
            None,
            "invoices.csv:3 column currency: a history has one currency: EUR after SEK",
        ),
        (
            "A,C,b2c,2025-01-01,2025-01-31,10,SEK,,\n",
            "",
            None,
            "invoices.csv:2: expected 10 fields, found 9",
        ),
        (
            "A,C,b2c,2025-01-01,2025-01-31,10,SEK,,,\n",
            "Z,2025-02-01,10\n",
            None,
            "payments.csv:2 column invoice_id: unknown invoice 'Z'",
        ),
        (
            "A,C,b2c,2025-01-01,2025-01-31,10,SEK,,,\n",
            "A,2025-02-01,-10\n",
            None,
            "payments.csv:2 column amount: must be greater than 0: '-10'",
        ),
        (
            "A,C,b2c,2025-01-01,2025-01-31,10,SEK,,,\n",
            "",
            "A,2025-02-01,reminder,fax,0\n",
            "actions.csv:2 column channel: must be one of email, sms, letter, phone: 'fax'",
        ),
        (
            "A,C,b2c,2025-01-01,2025-01-31,10,SEK,,,\n",
            "",
            "A,2025-02-01,escalation,letter,0\n",
            "actions.csv:2 column channel: an escalation has no channel",
        ),
        (
            "A,C,b2c,2025-01-01,2025-01-31,10,SEK,,,\n",
            "",
            "A,2025-02-01,visit,email,0\n",
            "actions.csv:2 column action: must be one of reminder, collection_notice, escalation: 'visit'",
        ),
        (
            "A,C,b2c,2025-01-01,2025-01-31,10,SEK,,,\n",
            "",
            "B,2025-02-01,reminder,email,0\n",
            "actions.csv:2 column invoice_id: unknown invoice 'B'",
        ),
    ],
)
def test_bad_rows_are_named_exactly(tmp_path, invoices, payments, actions, expected):
    assert expected in problems(write(tmp_path, invoices, payments, actions))


def test_every_problem_is_listed_and_nothing_is_loaded(tmp_path):
    folder = write(
        tmp_path,
        "A,C,b2x,bad,2025-01-31,-1,SEK,,,\nB,C,b2c,2025-01-01,2025-01-31,10,SEK,,,\n",
        "Z,2025-02-01,10\nB,someday,5\n",
    )
    found = problems(folder)
    assert found == [
        "invoices.csv:2 column debtor_type: must be b2b or b2c: 'b2x'",
        "invoices.csv:2 column issue_date: not a date (YYYY-MM-DD): 'bad'",
        "invoices.csv:2 column amount: must be greater than 0: '-1'",
        "payments.csv:2 column invoice_id: unknown invoice 'Z'",
        "payments.csv:3 column paid_date: not a date (YYYY-MM-DD): 'someday'",
    ]


def test_payments_after_an_explicit_as_of_are_refused(tmp_path):
    folder = write(tmp_path, "A,C,b2c,2025-01-01,2025-01-31,10,SEK,,,\n", "A,2025-03-01,10\n")
    assert problems(folder, as_of=date(2025, 2, 28)) == [
        "payments.csv:2 column paid_date: dated after the as-of date 2025-02-28"
    ]
    assert load_history(folder, as_of=date(2025, 3, 1)).as_of == day_number(date(2025, 3, 1))


def test_missing_files_columns_and_empty_files(tmp_path):
    assert problems(tmp_path / "nowhere") == [f"{tmp_path / 'nowhere'}:0: not a directory"]
    (tmp_path / "invoices.csv").write_text("invoice_id,debtor_id\n")
    found = problems(tmp_path)
    assert "invoices.csv:1 column due_date: required column is missing" in found
    assert "payments.csv:0: the file is missing (it may hold only a header row)" in found
    (tmp_path / "invoices.csv").write_text("")
    assert "invoices.csv:1: the file is empty: a header row is required" in problems(tmp_path)
    write(tmp_path, "")
    assert problems(tmp_path) == ["invoices.csv:1: no invoices"]
    (tmp_path / "invoices.csv").write_bytes(
        INVOICES.encode() + b"A,C,b2c,2025-01-01,2025-01-31,10,SEK,\xff,,\n"
    )
    assert any("UTF-8" in p for p in problems(tmp_path))


@pytest.mark.parametrize(
    ("currency", "text", "minor"),
    [
        ("SEK", "1250.5", 125_050),
        ("USD", "1250.50", 125_050),
        ("JPY", "1250", 1250),
        ("BHD", "1.250", 1250),
    ],
)
def test_amounts_follow_the_currency_exponent_on_both_load_paths(tmp_path, currency, text, minor):
    """ISO 4217 minor units, never an assumed two decimals; the fast and the checked path agree."""
    clean = tmp_path / "clean"
    clean.mkdir()
    write(clean, f"A,C,b2c,2025-01-01,2025-01-31,{text},{currency},,,\n", f"A,2025-02-01,{text}\n")
    h = load_history(clean)
    assert (
        h.currency == currency and h.amount.tolist() == [minor] and h.pay_amount.tolist() == [minor]
    )
    assert h.settled.tolist() == [day_number(date(2025, 2, 1))]
    # a quoted field sends the file down the checked path, which must agree
    checked = tmp_path / "checked"
    checked.mkdir()
    write(
        checked, f'A,C,b2c,2025-01-01,2025-01-31,"{text}",{currency},,,\n', f"A,2025-02-01,{text}\n"
    )
    assert _load_clean(checked, None) is None
    again = load_history(checked)
    assert again.amount.tolist() == [minor] and again.exponent == h.exponent
