"""Background job functions: importable, top-level, taking ids, and idempotent.

RQ workers import them by name; with no REDIS_URL the in-process executor (`backend.queue`)
calls the same functions, so both paths run the same code.
"""

from __future__ import annotations

import asyncio

from backend.idempotency import purge_expired
from backend.settings import Settings


def purge_idempotency_keys() -> int:
    """Delete Idempotency-Key records past their keep time; returns how many went."""
    settings = Settings.from_env()
    return asyncio.run(purge_expired(settings.idempotency_ttl_hours))
