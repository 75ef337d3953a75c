"""The dunning engine's uniqueness, which Piccolo's column API cannot declare.

A step is an invoice's k-th contact, unique per (invoice, ordinal): a crash and retry, two
workers or two runs the same day can never record it twice, and so never charge it twice.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-23T14:10:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "dunning steps unique per invoice and ordinal; one run per tenant and date"

INDEXES = [
    "CREATE UNIQUE INDEX IF NOT EXISTS dunning_steps_invoice_ordinal "
    "ON dunning_steps (invoice, ordinal)",
    "CREATE INDEX IF NOT EXISTS dunning_steps_tenant_status ON dunning_steps (tenant, status)",
    "CREATE UNIQUE INDEX IF NOT EXISTS dunning_runs_tenant_date ON dunning_runs (tenant, run_date)",
    "CREATE INDEX IF NOT EXISTS invoices_tenant_open ON invoices (tenant, settled_date, due_date)",
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
