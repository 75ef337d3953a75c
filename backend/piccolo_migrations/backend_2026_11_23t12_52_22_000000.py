"""Indexes of the policy tables that Piccolo's column API cannot declare."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-23T12:52:22:000000"
VERSION = "1.38.0"
DESCRIPTION = "policy version numbers unique per policy; live versions by tenant"

INDEXES = [
    "CREATE UNIQUE INDEX IF NOT EXISTS policy_versions_number "
    "ON policy_versions (policy, number)",
    "CREATE INDEX IF NOT EXISTS policy_versions_tenant_status "
    "ON policy_versions (tenant, status)",
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="backend", description=DESCRIPTION)

    async def create_indexes() -> None:
        engine = engine_finder()
        assert engine is not None
        for statement in INDEXES:  # in the migration's own transaction
            await engine.run_ddl(statement)

    manager.add_raw(create_indexes)
    return manager
