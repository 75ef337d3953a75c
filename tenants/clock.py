"""UTC time, and the awareness SQLite's driver strips from stored timestamps."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    """A stored timestamp as UTC-aware (SQLite may hand it back naive)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
