"""Opaque keyset cursors: `?cursor=` is the sort key of the last row, base64-encoded."""

from __future__ import annotations

import base64
import binascii


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
