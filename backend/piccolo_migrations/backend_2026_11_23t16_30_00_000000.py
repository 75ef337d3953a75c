"""Indexes the console's figures read by (frontend_api.figures), PostgreSQL only.

Each is covering (INCLUDE the summed columns), so the portfolio's GROUP BYs are index-only
scans once VACUUM has marked the pages visible: the unpaid invoices by due date (ageing,
across every client and per client; partial on `settled_date IS NULL`, the one condition of
theirs that is no bind parameter, so it holds for generic plans too), invoices by issue
date (the last 90 days' sales for DSO, the monthly trend), payments by paid date (cash in),
the engine's steps by run date (fees) and by creation (a client's recent contacts).
bench/portfolio.py measures what they buy at 10 000 000 invoices. SQLite keeps the indexes
it has: it has no INCLUDE, and its books are a laptop's.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder
from piccolo.engine.postgres import PostgresEngine

ID = "2026-11-23T16:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "console figure indexes"

STATEMENTS = (
    "CREATE INDEX IF NOT EXISTS invoices_unpaid_by_due ON invoices (due_date, tenant) "
    "INCLUDE (amount, paid_amount, state, origin, interest_accrued) WHERE settled_date IS NULL",
    "CREATE INDEX IF NOT EXISTS invoices_unpaid_by_tenant_due ON invoices (tenant, due_date) "
    "INCLUDE (amount, paid_amount, state, origin, interest_accrued) WHERE settled_date IS NULL",
    "CREATE INDEX IF NOT EXISTS invoices_by_issue ON invoices (issue_date, tenant) "
    "INCLUDE (amount, origin)",
    "CREATE INDEX IF NOT EXISTS invoices_by_tenant_issue ON invoices (tenant, issue_date) "
    "INCLUDE (amount, origin)",
    "CREATE INDEX IF NOT EXISTS payments_by_paid ON payments (paid_date, tenant) "
    "INCLUDE (amount)",
    "CREATE INDEX IF NOT EXISTS payments_by_tenant_paid ON payments (tenant, paid_date) "
    "INCLUDE (amount)",
    "CREATE INDEX IF NOT EXISTS dunning_steps_by_run ON dunning_steps (run_date, tenant) "
    "INCLUDE (fee, status)",
    "CREATE INDEX IF NOT EXISTS dunning_steps_by_tenant_run ON dunning_steps (tenant, run_date) "
    "INCLUDE (fee, status)",
    "CREATE INDEX IF NOT EXISTS dunning_steps_by_tenant_created "
    "ON dunning_steps (tenant, created_at)",
    "CREATE INDEX IF NOT EXISTS collection_cases_by_opened "
    "ON collection_cases (opened_on, tenant)",
)


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="backend", description=DESCRIPTION)

    async def create_indexes() -> None:
        engine = engine_finder()
        assert engine is not None
        if not isinstance(engine, PostgresEngine):
            return
        for statement in STATEMENTS:
            await engine.run_ddl(statement)

    manager.add_raw(create_indexes)
    return manager
