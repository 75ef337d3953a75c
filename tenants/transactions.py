"""Write transactions that behave the same on SQLite and PostgreSQL.

SQLite's default (deferred) transaction takes the write lock only at its first write; two
such transactions that both read first cannot both upgrade, and one fails at once with
"database is locked" whatever the busy timeout. IMMEDIATE takes the lock up front, so
writers queue behind the busy timeout instead. PostgreSQL needs nothing special.
"""

from __future__ import annotations

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
