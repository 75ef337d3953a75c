"""Opaque keyset cursors: `?cursor=` is the sort key of the last row, base64-encoded."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any


class BadCursor(ValueError):
    """The cursor was not one this service issued; answered as a 422 on `cursor`."""


def encode_cursor(*parts: object) -> str:
    return base64.urlsafe_b64encode("|".join(map(str, parts)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, count: int) -> list[str]:
    try:
        parts = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split("|")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise BadCursor("malformed cursor") from exc
    if len(parts) != count:
        raise BadCursor("malformed cursor")
    return parts


def decode_cursor_as(cursor: str, *parsers: Callable[[str], Any]) -> list[Any]:
    """The cursor's parts, each parsed by its parser (`date.fromisoformat`, `UUID`, …)."""
    parts = decode_cursor(cursor, len(parsers))
    try:
        return [parse(part) for parse, part in zip(parsers, parts, strict=True)]
    except ValueError as exc:
        raise BadCursor("malformed cursor") from exc


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
