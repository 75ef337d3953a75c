"""The Redis store behind rate limits and login throttles, and what it does while Redis is down.

Without a guard every request that touches a limit (all of them) answered 500 once Redis
went away. The choice, per store:

- Fail open: the per-credential request limit (`rate_limit`), the bad-credential counter
  per address (`auth_failures`) and the response cache act as if empty. The API keeps
  answering valid keys and sessions; for the outage, limits are not enforced (an API key
  cannot be guessed, so the counter of bad ones protects little in the meantime).
- Fail closed: login throttles (`login_accounts`, `login_addresses`). A password can be
  guessed, so login answers 503 while its throttle cannot count; sessions and API keys
  already issued keep working.

After a failure Redis is not asked again for `RETRY_SECONDS`, so an outage costs each
request nothing, not a connection timeout per counter; each outage is logged once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Any, Self

import structlog
from litestar.exceptions import ServiceUnavailableException
from litestar.stores.base import NamespacedStore
from litestar.stores.redis import RedisStore

FAIL_CLOSED = frozenset({"login_accounts", "login_addresses"})
RETRY_SECONDS = 2.0

log = structlog.get_logger("kravlab.limits")


class LimitStoreUnavailable(ServiceUnavailableException):
    """A fail-closed store cannot count: the request is refused, not let through uncounted."""


@dataclass
class _Outage:
    """Shared by every namespace of one Redis: down for one is down for all."""

    until: float = 0.0

    def down(self) -> bool:
        return time.monotonic() < self.until

    def begin(self, error: BaseException) -> None:
        if not self.down():
            log.warning("Redis unavailable for limits", error=f"{type(error).__name__}: {error}")
        self.until = time.monotonic() + RETRY_SECONDS


def redis_limit_store(url: str) -> GuardedRedisStore:
    """A client that gives up in a second or two: a request is waiting on every call."""
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    client = Redis.from_url(
        url, socket_connect_timeout=1, socket_timeout=2, retry=Retry(NoBackoff(), 0)
    )
    store = RedisStore(redis=client, namespace="kravlab", handle_client_shutdown=True)
    return GuardedRedisStore(store, "", _Outage())


class GuardedRedisStore(NamespacedStore):
    def __init__(self, inner: RedisStore, name: str, outage: _Outage) -> None:
        self.namespace = inner.namespace
        self.inner = inner
        self.name = name
        self.outage = outage

    def with_namespace(self, namespace: str) -> Self:
        return type(self)(self.inner.with_namespace(namespace), namespace, self.outage)

    async def _call(self, method: str, *args: Any, fallback: Any = None) -> Any:
        from redis.exceptions import RedisError

        if not self.outage.down():
            try:
                return await getattr(self.inner, method)(*args)
            except (RedisError, OSError) as exc:
                self.outage.begin(exc)
        if self.name in FAIL_CLOSED:
            raise LimitStoreUnavailable("login is unavailable for a moment, retry shortly")
        return fallback

    async def set(
        self, key: str, value: str | bytes, expires_in: int | timedelta | None = None
    ) -> None:
        await self._call("set", key, value, expires_in)

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        result: bytes | None = await self._call("get", key, renew_for)
        return result

    async def delete(self, key: str) -> None:
        await self._call("delete", key)

    async def delete_all(self) -> None:
        await self._call("delete_all")

    async def exists(self, key: str) -> bool:
        return bool(await self._call("exists", key, fallback=False))

    async def expires_in(self, key: str) -> int | None:
        result: int | None = await self._call("expires_in", key)
        return result

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.inner.__aexit__(exc_type, exc_val, exc_tb)
