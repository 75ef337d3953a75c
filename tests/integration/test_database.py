"""The engine's edges: a pool close that cannot hang, and which errors mean "database down"."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace

import asyncpg
import pytest

from backend import database
from tests.conftest import ENGINE


@pytest.mark.skipif(ENGINE != "postgres", reason="a connection pool exists on PostgreSQL only")
async def test_closing_the_pool_does_not_wait_for_a_connection_never_given_back(settings):
    """A leaked connection made asyncpg's `Pool.close` (and so the shutdown) wait forever."""
    engine = database.engine_for(replace(settings, db_application_name="kravlab-close-test"))
    await database.open_pool(engine, settings)
    pool = engine.pool
    leaked = await pool.acquire()  # never released, as the old in-thread purge did
    assert database.pool_in_use(engine) == 1
    await asyncio.wait_for(database.close_pool(engine, within=0.5), timeout=10)
    assert engine.pool is None and leaked is not None
    check = await asyncpg.connect(os.environ["DATABASE_URL"])
    try:
        for _ in range(50):  # the server's backend exits a moment after the socket closes
            left = await check.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE application_name = 'kravlab-close-test'"
            )
            if left == 0:
                break
            await asyncio.sleep(0.1)
    finally:
        await check.close()
    assert left == 0


def _raised_while_handling(cleanup: Exception, cause: Exception) -> Exception:
    try:
        try:
            raise cause
        except Exception:
            raise cleanup  # noqa: B904 (asyncpg's cleanup raises exactly like this)
    except Exception as exc:
        return exc


def test_a_cleanup_error_is_an_outage_only_when_a_lost_connection_caused_it():
    internal = asyncpg.exceptions.InternalClientError
    lost = asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed")
    assert database._lost_connection(_raised_while_handling(internal("state"), lost))
    assert database._lost_connection(ConnectionRefusedError(111, "refused"))
    assert database._lost_connection(  # a pooled connection the restart left half-reset
        internal("cannot switch to state 12; another operation (2) is in progress")
    )
    assert not database._lost_connection(internal("a bug of ours"))
    assert not database._lost_connection(
        _raised_while_handling(internal("state"), ValueError("unrelated"))
    )
