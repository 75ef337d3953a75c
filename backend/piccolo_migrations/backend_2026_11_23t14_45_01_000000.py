"""One template per tenant and name."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-23T14:45:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "tenant templates unique per tenant and name"


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="backend", description=DESCRIPTION)

    async def create_index() -> None:
        engine = engine_finder()
        assert engine is not None
        await engine.run_ddl(
            "CREATE UNIQUE INDEX IF NOT EXISTS tenant_templates_name "
            "ON tenant_templates (tenant, name)"
        )

    manager.add_raw(create_index)
    return manager
