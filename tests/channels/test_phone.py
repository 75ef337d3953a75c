"""Phone: the call task staff work from, and the outcome vocabulary with its rules."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from backend.channels.message import Debtor, MessageError
from backend.channels.phone import (
    EFFECTS,
    OUTCOMES,
    CallOutcome,
    CallTask,
    OutcomeError,
    call_task,
    check_outcome,
    parse_outcome,
)
from tests.channels.messages import SENT_ON, message, notice

CALLED = dt.date(2026, 3, 2)


def test_a_call_task_says_who_why_and_what_to_say():
    task = call_task(notice(channel="phone"))
    assert (task.phone, task.debtor_name, task.tenant_id) == (
        "+46701234567",
        "Märta Ångström",
        "t-1",
    )
    assert task.kind == "collection_notice" and task.call_by == SENT_ON
    assert task.amount_due == 123_450 + 18_000 + 6_000 + 1_015 and task.currency == "SEK"
    assert "F-2026-0042" in task.reason
    assert "sista betalningsdag 2026-03-10" in task.script
    assert "avsluta inte utan en överenskommelse" in task.script
    again = msgspec.json.decode(msgspec.json.encode(task), type=CallTask)
    assert again == task  # the engine stores it as JSON and reads it back unchanged
    english = call_task(message(channel="phone", language="en"))
    assert english.script.startswith("Call Märta Ångström about invoice F-2026-0042")


def test_a_call_needs_a_number():
    with pytest.raises(MessageError, match=r"debtor\.phone"):
        call_task(message(channel="phone", debtor=Debtor(name="N", email="n@example.se")))


def test_every_outcome_has_one_effect_on_the_flow():
    assert set(EFFECTS) == set(OUTCOMES) == {"reached", "promise_to_pay", "dispute", "no_answer"}
    assert EFFECTS["promise_to_pay"] == "pause_until_promised_date"
    assert EFFECTS["dispute"] == "pause_until_resolved"


def test_a_promise_to_pay_carries_a_date_after_the_call():
    ok = parse_outcome(b'{"outcome": "promise_to_pay", "promised_date": "2026-03-16"}', CALLED)
    assert ok.promised_date == dt.date(2026, 3, 16)
    for raw, path in [
        (b'{"outcome": "promise_to_pay"}', "promised_date"),
        (b'{"outcome": "promise_to_pay", "promised_date": "2026-03-02"}', "promised_date"),
        (b'{"outcome": "promise_to_pay", "promised_date": "2026-09-01"}', "promised_date"),
        (b'{"outcome": "no_answer", "promised_date": "2026-03-16"}', "promised_date"),
        (b'{"outcome": "voicemail"}', "$"),
        (b'{"outcome": "reached", "extra": 1}', "$"),
        (b'{"outcome": "reached", "note": "' + b"x" * 2_001 + b'"}', "$"),
        (b"not json", "$"),
    ]:
        with pytest.raises(OutcomeError) as caught:
            parse_outcome(raw, CALLED)
        assert caught.value.violations[0][0] == path, raw


def test_outcomes_without_a_date_pass():
    for outcome in ("reached", "dispute", "no_answer"):
        assert check_outcome(CallOutcome(outcome=outcome), CALLED).outcome == outcome
