"""Composite indexes Piccolo's column API cannot declare: one row per (tenant, external_id)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-22T10:50:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "composite unique and lookup indexes"

INDEXES = [
    "CREATE UNIQUE INDEX IF NOT EXISTS debtors_tenant_external_id ON debtors (tenant, external_id)",
    "CREATE UNIQUE INDEX IF NOT EXISTS invoices_tenant_external_id ON invoices (tenant, external_id)",
    "CREATE UNIQUE INDEX IF NOT EXISTS payments_tenant_external_id ON payments (tenant, external_id)",
    "CREATE INDEX IF NOT EXISTS invoices_tenant_due ON invoices (tenant, due_date, id)",
    "CREATE INDEX IF NOT EXISTS invoices_tenant_reference ON invoices (tenant, reference)",
    "CREATE INDEX IF NOT EXISTS payments_tenant_unmatched ON payments (tenant, matched_by, id)",
    "CREATE INDEX IF NOT EXISTS payments_tenant_invoice_external_id ON payments (tenant, invoice_external_id)",
    "CREATE INDEX IF NOT EXISTS payments_tenant_reference ON payments (tenant, reference)",
    "CREATE UNIQUE INDEX IF NOT EXISTS idempotency_owner_key ON idempotency_records (owner, key)",
    "CREATE INDEX IF NOT EXISTS idempotency_created ON idempotency_records (created_at)",
    "CREATE INDEX IF NOT EXISTS invoice_events_tenant ON invoice_events (tenant)",
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="backend", description=DESCRIPTION)

    async def create_indexes() -> None:
        engine = engine_finder()
        assert engine is not None
        for statement in INDEXES:
            await engine._run_in_new_connection(statement)

    manager.add_raw(create_indexes)
    return manager
