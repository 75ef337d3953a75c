"""Indexes the simulation service reads by: an invoice's origin, a simulation's request key
per tenant, the gate's lookup of a simulated version."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-23T15:00:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "simulation service indexes"


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="backend", description=DESCRIPTION)

    async def create_indexes() -> None:
        engine = engine_finder()
        assert engine is not None
        for statement in (
            "CREATE INDEX IF NOT EXISTS simulations_tenant_key "
            "ON simulations (tenant, request_key)",
            "CREATE INDEX IF NOT EXISTS simulated_versions_lookup "
            "ON simulated_versions (tenant, policy, version)",
            "CREATE INDEX IF NOT EXISTS contacts_tenant ON contacts (tenant)",
        ):
            await engine.run_ddl(statement)

    manager.add_raw(create_indexes)
    return manager
