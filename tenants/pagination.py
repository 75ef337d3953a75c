"""Opaque keyset cursors: `?cursor=` is the sort key of the last row, base64-encoded.

A cursor comes back from the client, so it is input like any other: each part must parse
into a value the database can compare (no control characters, which PostgreSQL text cannot
hold; no moment that leaves the calendar when turned to UTC), or the cursor is refused.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class BadCursor(ValueError):
    """The cursor was not one this service issued; answered as a 422 on `cursor`."""


def encode_cursor(*parts: object) -> str:
    return base64.urlsafe_b64encode("|".join(map(str, parts)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, count: int) -> list[str]:
    try:
        parts = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split("|")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise BadCursor("malformed cursor") from exc
    if len(parts) != count or any(_CONTROL.search(part) for part in parts):
        raise BadCursor("malformed cursor")
    return parts


def utc_moment(text: str) -> datetime:
    """A timestamp part as an aware UTC datetime (one without an offset is taken as UTC).

    UTC is how both engines store and compare timestamps; a moment that is not one in UTC
    (9999-12-31 at -14:00) raises OverflowError here rather than in the driver.
    """
    return _in_utc(datetime.fromisoformat(text))


def decode_cursor_as(cursor: str, *parsers: Callable[[str], Any]) -> list[Any]:
    """The cursor's parts, each parsed by its parser (`date.fromisoformat`, `UUID`, …).

    A part that parses to a datetime is handed back in UTC whatever parser made it, so a
    moment outside the calendar in UTC is refused here for every list, not in a driver.
    """
    parts = decode_cursor(cursor, len(parsers))
    try:
        values = [parse(part) for parse, part in zip(parsers, parts, strict=True)]
        return [_in_utc(v) if isinstance(v, datetime) else v for v in values]
    except (ValueError, OverflowError) as exc:
        raise BadCursor("malformed cursor") from exc


def _in_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


async def keyset_page(
    query: Any, limit: int, key: Callable[[dict[str, Any]], tuple[Any, ...]]
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of an ordered query: its rows and the cursor of the next page (None at the end).

    Fetches one row more than asked to know whether another page exists.
    """
    rows = await query.limit(limit + 1)
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(*key(rows[-1]))
