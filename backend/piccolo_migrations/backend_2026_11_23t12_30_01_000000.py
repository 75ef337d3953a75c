"""Idempotency-Key records belong to the credential that sent them, not to the path's tenant.

A key is unique per credential: another caller reusing the same key string (even on the same
tenant path) neither sees nor blocks the first caller's answer. Piccolo runs a migration's raw
steps before its column changes, hence a migration of its own after the column's.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-23T12:30:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "idempotency records unique per credential"


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="backend", description=DESCRIPTION)

    async def rekey() -> None:
        engine = engine_finder()
        assert engine is not None
        # Records made before this migration carry no credential: they can never be
        # replayed again, so drop them rather than keep answers nobody may receive.
        for statement in (
            "DELETE FROM idempotency_records",
            "DROP INDEX IF EXISTS idempotency_owner_key",
            "CREATE UNIQUE INDEX IF NOT EXISTS idempotency_credential_key "
            "ON idempotency_records (credential, key)",
        ):
            await engine._run_in_new_connection(statement)

    manager.add_raw(rekey)
    return manager
