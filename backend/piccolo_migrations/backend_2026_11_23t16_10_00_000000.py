"""Room on each page of `invoices` for a row's next version (fillfactor 60, PostgreSQL).

Every daily dunning run writes each overdue invoice's interest figure (one row version per
invoice per day). On full pages each new version goes to another page and adds an entry to
each of the table's six indexes; with room on the page PostgreSQL writes it there (a HOT
update: no index entries), and the next day reuses the room of the day before. Measured at
1 000 000 invoices (bench/dunning.py, docs/benchmarks.md): the day's interest accrual took
53–77 s at the default fillfactor 100 (24 % of updates HOT), 14 s at 60 (92 % HOT). The
table is ≈ 1.6× as large on disk. New pages only: an existing table takes it page by page
as rows move, or at once with `VACUUM FULL invoices`. SQLite has no such setting.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder
from piccolo.engine.postgres import PostgresEngine

ID = "2026-11-23T16:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "invoices fillfactor 60: daily interest updates stay on their page"


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="backend", description=DESCRIPTION)

    async def set_fillfactor() -> None:
        engine = engine_finder()
        assert engine is not None
        if isinstance(engine, PostgresEngine):
            await engine.run_ddl("ALTER TABLE invoices SET (fillfactor = 60)")

    manager.add_raw(set_fillfactor)
    return manager
