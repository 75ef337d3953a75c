"""Seed the reference-rate table from simulator/rules.py's rows (the law's figures, kept once).

A migration of its own because Piccolo runs a migration's raw steps before its table
changes. Rows already present are left as they are, so running it on a table an agency has
corrected changes nothing of theirs. Rows added to rules.py later reach a database through
the API (`POST /api/v1/reference-rates`), not through this migration.
"""

from datetime import UTC, date, datetime
from uuid import uuid4

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns import UUID, Date, Integer, Timestamptz, Varchar
from piccolo.table import Table

from simulator.rules import REFERENCE_RATE_BP

ID = "2026-11-23T14:00:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "reference rates seeded from simulator.rules"


class ReferenceRate(Table, tablename="reference_rates"):
    """The table as this migration knows it (backend.tables may change later)."""

    id = UUID(primary_key=True)
    valid_from = Date(unique=True)
    rate_bp = Integer()
    created_at = Timestamptz()
    created_by = Varchar(length=80)


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="backend", description=DESCRIPTION)

    async def seed() -> None:
        present = {row["valid_from"] for row in await ReferenceRate.select(ReferenceRate.valid_from)}
        now = datetime.now(UTC)
        rows = [
            ReferenceRate(
                id=uuid4(),
                valid_from=date.fromisoformat(start),
                rate_bp=rate_bp,
                created_at=now,
                created_by="migration:simulator.rules",
            )
            for start, rate_bp in REFERENCE_RATE_BP
            if date.fromisoformat(start) not in present
        ]
        if rows:
            await ReferenceRate.insert(*rows)

    manager.add_raw(seed)
    return manager
