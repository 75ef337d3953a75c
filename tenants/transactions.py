"""Write transactions that behave the same on SQLite and PostgreSQL.

SQLite's default (deferred) transaction takes the write lock only at its first write; two
such transactions that both read first cannot both upgrade, and one fails at once with
"database is locked" whatever the busy timeout. IMMEDIATE takes the lock up front, so
writers queue behind the busy timeout instead. PostgreSQL needs nothing special.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from piccolo.engine.base import Engine
from piccolo.engine.sqlite import SQLiteEngine, TransactionType

from tenants.tables import Tenant


def engine() -> Engine:
    """The engine every table is bound to (they all share one)."""
    return Tenant._meta.db


def is_sqlite() -> bool:
    return isinstance(engine(), SQLiteEngine)


def write_transaction() -> Any:
    db = engine()
    if isinstance(db, SQLiteEngine):
        return db.transaction(transaction_type=TransactionType.immediate)
    return db.transaction()


@asynccontextmanager
async def read_snapshot() -> AsyncIterator[None]:
    """Several reads that see one state of the database (and write nothing): SQLite's
    deferred transaction holds its WAL snapshot from the first read; PostgreSQL's repeatable
    read does the same. What a model is fitted on must not be half one moment, half the next.
    """
    db = engine()
    if isinstance(db, SQLiteEngine):
        async with db.transaction(transaction_type=TransactionType.deferred):
            yield
        return
    async with db.transaction() as transaction:
        await transaction.connection.execute(
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
        )
        yield
