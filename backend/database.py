"""The Piccolo engine behind every table, chosen by the app factory from its settings.

Nothing here runs at import: `bind(settings)` builds the engine and hands it to every table
(and to Piccolo's migrations, through `backend.piccolo_conf`), so `create_app(settings)`
decides which database a process talks to. A process that never called `bind` (the CLI's
migrate, an RQ job) gets the engine of `get_settings()` on first use.

SQLite is opened in WAL mode with a long busy timeout, and every write goes through an
IMMEDIATE transaction (see `tenants.transactions`), so concurrent writers queue for the lock
instead of failing with "database is locked".

On PostgreSQL a lost connection (the server restarting, a failover) is not a bug of ours:
`DATABASE_UNAVAILABLE` lists the errors that mean it, and the app answers them 503 so
clients retry. The pool replaces dead connections on the next acquire, so service comes
back by itself once the database does.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import asyncpg
import structlog
from litestar import MediaType, Request, Response
from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine

from backend.settings import Settings, get_settings

SQLITE_BUSY_TIMEOUT_SECONDS = 60
# How long shutdown waits for checked-out connections before cutting them.
POOL_CLOSE_SECONDS = 2.0

log = structlog.get_logger("kravlab.database")

_bound: Engine | None = None


def engine_for(settings: Settings) -> Engine:
    if settings.is_postgres:
        return PostgresEngine(
            config={
                "dsn": settings.database_url,
                # No JIT: it compiled for 2.6 s to save milliseconds on the dunning run's reads
                # (its cost estimates are large, its work is index lookups).
                "server_settings": {"application_name": settings.db_application_name, "jit": "off"},
            }
        )
    path = settings.sqlite_path
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as connection:  # WAL is a property of the file: set it once
        connection.execute("PRAGMA journal_mode=WAL")
    return SQLiteEngine(path=str(path), timeout=SQLITE_BUSY_TIMEOUT_SECONDS)


def bind(settings: Settings) -> Engine:
    """Make `settings`' database the one every table and migration of this process uses."""
    global _bound
    from piccolo.conf.apps import Finder

    engine = engine_for(settings)
    for table in Finder().get_table_classes():
        table._meta.db = engine
    _bound = engine
    return engine


def current() -> Engine:
    """The bound engine; binds the process's settings on first use."""
    return _bound if _bound is not None else bind(get_settings())


async def open_pool(engine: Engine, settings: Settings) -> None:
    if isinstance(engine, PostgresEngine) and engine.pool is None:
        await engine.start_connection_pool(min_size=1, max_size=settings.db_pool_size)


async def close_pool(engine: Engine, within: float = POOL_CLOSE_SECONDS) -> None:
    """Close the pool, waiting at most `within` seconds for connections still checked out.

    asyncpg's `Pool.close` waits for every connection to come back, forever if one never
    does; past the timeout the rest are terminated, so a shutdown cannot hang on them.
    """
    if not isinstance(engine, PostgresEngine) or engine.pool is None:
        return
    pool, engine.pool = engine.pool, None
    try:
        await asyncio.wait_for(pool.close(), within)
    except TimeoutError:
        log.warning("connections still in use at shutdown were terminated", waited=within)
        pool.terminate()


def pool_in_use(engine: Engine) -> int | None:
    """Connections checked out of the pool right now (None without a pool)."""
    pool = getattr(engine, "pool", None)
    if pool is None:
        return None
    return int(pool.get_size() - pool.get_idle_size())


DATABASE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    ConnectionError,  # refused or reset while the server is down
)


# What asyncpg raises when it cleans up after a lost connection (releasing it to the pool,
# resetting it): a 503 when a lost connection is among its causes, else a bug (500).
_CLEANUP_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)


# A pooled connection the server dropped while asyncpg was resetting it for reuse keeps a
# half-finished operation; its next user gets this state error instead of a connection
# error. Our code never shares a connection between tasks, so here it means exactly that.
_BROKEN_BY_RESTART = "another operation"


def _lost_connection(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, DATABASE_UNAVAILABLE):
            return True
        if isinstance(current, asyncpg.exceptions.InternalClientError) and (
            _BROKEN_BY_RESTART in str(current)
        ):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if not _lost_connection(exc):
        from backend.errors import unexpected

        return unexpected(request, exc)
    log.warning("database unavailable", path=request.url.path, error=f"{type(exc).__name__}: {exc}")
    return Response(
        content={"status": 503, "message": "the database is unavailable, retry shortly"},
        status_code=503,
        media_type=MediaType.JSON,
        headers={"Retry-After": "5"},
    )


EXCEPTION_HANDLERS: dict[Any, Any] = dict.fromkeys(
    DATABASE_UNAVAILABLE + _CLEANUP_ERRORS, unavailable
)
