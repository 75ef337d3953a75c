"""Cursors come back from clients: whatever a list parses out of one must be safe to query."""

from __future__ import annotations

from datetime import UTC, date, datetime
from uuid import UUID, uuid4

import pytest

from tenants.pagination import BadCursor, decode_cursor, decode_cursor_as, encode_cursor


@pytest.mark.parametrize(
    "moment",
    ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59.999999-00:01"],
)
def test_a_moment_outside_the_calendar_in_utc_is_refused_by_any_datetime_parser(moment):
    cursor = encode_cursor(moment, uuid4())
    with pytest.raises(BadCursor):
        decode_cursor_as(cursor, datetime.fromisoformat, UUID)


def test_moments_come_back_in_utc_and_naive_ones_are_taken_as_utc():
    after = uuid4()
    at, got = decode_cursor_as(
        encode_cursor("2026-01-01T01:00:00+02:00", after), datetime.fromisoformat, UUID
    )
    assert at == datetime(2025, 12, 31, 23, 0, tzinfo=UTC) and at.tzinfo is UTC and got == after
    (naive,) = decode_cursor_as(encode_cursor("2026-01-01T01:00:00"), datetime.fromisoformat)
    assert naive == datetime(2026, 1, 1, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize("part", ["a\x00b", "\x00", "x\n", "\x1f", "\x7f"])
def test_control_characters_in_a_part_are_refused(part):
    with pytest.raises(BadCursor):
        decode_cursor(encode_cursor(part), 1)
    with pytest.raises(BadCursor):
        decode_cursor_as(encode_cursor("2026-01-01", part), date.fromisoformat, str)


@pytest.mark.parametrize("cursor", ["", "!!!!", "%%%", encode_cursor("a", "b", "c"), "YQ=x"])
def test_malformed_cursors_are_refused(cursor):
    with pytest.raises(BadCursor):
        decode_cursor_as(cursor, date.fromisoformat, UUID)


def test_a_cursor_the_service_made_round_trips():
    due, last = date(2026, 3, 1), uuid4()
    assert decode_cursor_as(encode_cursor(due, last), date.fromisoformat, UUID) == [due, last]
