"""The Piccolo engine behind every table, built from DATABASE_URL.

SQLite is opened in WAL mode with a long busy timeout, and every write goes through an
IMMEDIATE transaction (see `tenants.transactions`), so concurrent writers queue for the lock
instead of failing with "database is locked".
"""

from __future__ import annotations

import sqlite3

from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine

from backend.settings import Settings

SQLITE_BUSY_TIMEOUT_SECONDS = 60


def engine_for(settings: Settings) -> Engine:
    if settings.is_postgres:
        return PostgresEngine(config={"dsn": settings.database_url})
    path = settings.sqlite_path
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as connection:  # WAL is a property of the file: set it once
        connection.execute("PRAGMA journal_mode=WAL")
    return SQLiteEngine(path=str(path), timeout=SQLITE_BUSY_TIMEOUT_SECONDS)
