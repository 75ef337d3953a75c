"""The message model: one vocabulary with the policy model, and what `check` refuses."""

from __future__ import annotations

import datetime as dt
from typing import get_args

import msgspec
import pytest

from backend.channels import phone
from backend.channels.message import (
    LANGUAGES,
    Channel,
    Debtor,
    Language,
    MessageError,
    StepKind,
    check,
)
from simulator.policy import ACTIONS, CHANNELS
from tests.channels.messages import message, notice


def test_step_kinds_channels_and_outcomes_are_one_vocabulary():
    assert get_args(StepKind) == ACTIONS and get_args(Channel) == CHANNELS
    assert get_args(Language) == LANGUAGES
    assert get_args(phone.Outcome) == phone.OUTCOMES


def test_a_message_survives_json_as_the_engine_may_queue_it():
    original = notice()
    again = msgspec.json.decode(msgspec.json.encode(original), type=type(original))
    assert check(again) == original and original.total == 123_450 + 18_000 + 6_000 + 1_015


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"debtor": Debtor(name="x" * 201, email="a@b.se")}, "debtor.name"),
        ({"debtor": Debtor(name="N", email="a@b.se", phone="0701234567")}, "debtor.phone"),
        ({"debtor": Debtor(name="N", email="a@b.se\r\nBcc: c@d.se")}, "debtor.email"),
        ({"debtor": Debtor(name="N", email="å@b.se")}, "debtor.email"),
        ({"debtor": Debtor(name="N", email="a@b.se", address=("x",) * 7)}, "debtor.address"),
        ({"amount": 10**16}, "amount"),
        ({"compensation": 45_000}, "compensation"),
        ({"fee": 6_001}, "fee"),
        ({"channel": "fax"}, "channel"),
        ({"language": "de"}, "language"),
    ],
)
def test_bad_messages_are_refused_with_the_path(changes, path):
    with pytest.raises(MessageError) as caught:
        check(message(**changes))
    assert caught.value.violations[0][0] == path


def test_a_collection_notice_at_the_eight_day_minimum_passes():
    assert check(notice()).pay_by - notice().sent_on == dt.timedelta(days=8)
