"""The event log's and the webhook outbox's composite indexes (Piccolo's column API cannot
declare them).

Events are listed per tenant in (at, id) order, optionally of one kind; the delivery job
looks for a tenant's deliveries by status and due time; one delivery per webhook and event,
so recording an event twice into the outbox can never send it twice.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-23T14:30:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "events and webhook deliveries: composite indexes"

INDEXES = [
    "CREATE INDEX IF NOT EXISTS events_tenant_at ON events (tenant, at, id)",
    "CREATE INDEX IF NOT EXISTS events_tenant_kind_at ON events (tenant, kind, at, id)",
    "CREATE UNIQUE INDEX IF NOT EXISTS webhook_deliveries_webhook_event "
    "ON webhook_deliveries (webhook, event)",
    "CREATE INDEX IF NOT EXISTS webhook_deliveries_tenant_status "
    "ON webhook_deliveries (tenant, status, next_attempt_at)",
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
