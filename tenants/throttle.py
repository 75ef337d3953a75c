"""Counters for what an attacker controls the pace of: failed credentials and login attempts.

The general limit (requests per minute per credential) is Litestar's rate-limit middleware,
keyed on who the caller turned out to be. That middleware never sees a request whose
credential is wrong, and a login carries no credential at all, so guessing keys or passwords
is counted here instead: per address for any bad credential, and for logins per account *and*
per address, whatever headers come along. The counts live in the app's store registry (Redis
when set, else files shared by the processes of one machine), so every worker sees one budget.

A counter is a fixed window: the first attempt opens it for `window` seconds; the window's
count never grows past the limit plus the requests that raced it.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.exceptions import TooManyRequestsException
from litestar.stores.base import Store


class _Window(msgspec.Struct):
    count: int
    reset: float


@dataclass(frozen=True)
class Throttle:
    """`limit` attempts per `window` seconds for each key, counted in store `store_name`."""

    store_name: str
    limit: int
    window: int = 60

    def _store(self, app: Any) -> Store:
        return app.stores.get(self.store_name)

    @staticmethod
    def _key(key: str) -> str:
        # Emails and addresses become file names in the file store: hash them.
        return hashlib.sha256(key.encode()).hexdigest()[:40]

    async def _read(self, store: Store, key: str) -> _Window | None:
        raw = await store.get(self._key(key))
        if raw is None:
            return None
        window = msgspec.json.decode(raw, type=_Window)
        return window if window.reset > time.time() else None

    async def check(self, app: Any, key: str) -> None:
        """429 with Retry-After once `key` has used up its window."""
        window = await self._read(self._store(app), key)
        if window is not None and window.count >= self.limit:
            wait = max(1, int(window.reset - time.time()) + 1)
            raise TooManyRequestsException(
                "too many attempts: try again later", headers={"Retry-After": str(wait)}
            )

    async def hit(self, app: Any, key: str) -> None:
        store = self._store(app)
        now = time.time()
        window = await self._read(store, key) or _Window(0, now + self.window)
        window.count += 1
        await store.set(
            self._key(key), msgspec.json.encode(window), expires_in=int(window.reset - now) + 1
        )

    async def spend(self, app: Any, key: str) -> None:
        """Check, then count this attempt."""
        await self.check(app, key)
        await self.hit(app, key)
