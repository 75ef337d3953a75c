"""A user's email is unique within its tenant (and among agency staff), not across tenants.

With one global unique email, inviting an address another tenant already uses answered 409,
telling any tenant admin who the other tenants' users are. Tenants are independent
namespaces now: the same person may be a user of two client companies, and no answer
reveals another tenant's users.

SQLite cannot drop a column's UNIQUE constraint, so there the table is rebuilt; PostgreSQL
drops the constraint. Piccolo's column API cannot declare partial unique indexes, hence raw
SQL (tables.py declares the column without `unique`; review any auto migration of it).
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder
from piccolo.engine.sqlite import SQLiteEngine

ID = "2026-11-23T13:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "user emails unique per tenant"

SQLITE_REBUILD = [
    'CREATE TABLE "users_new" ("id" UUID PRIMARY KEY NOT NULL DEFAULT None, '
    '"tenant" UUID REFERENCES "tenants" ("id") ON DELETE CASCADE ON UPDATE CASCADE DEFAULT null, '
    '"email" VARCHAR(254) NOT NULL DEFAULT \'\', "password_hash" TEXT NOT NULL DEFAULT \'\', '
    '"role" VARCHAR(32) NOT NULL DEFAULT \'\', "active" BOOLEAN NOT NULL DEFAULT true, '
    '"created_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, '
    '"last_login_at" TIMESTAMPTZ DEFAULT null)',
    'INSERT INTO "users_new" SELECT "id", "tenant", "email", "password_hash", "role", "active", '
    '"created_at", "last_login_at" FROM "users"',
    'DROP TABLE "users"',
    'ALTER TABLE "users_new" RENAME TO "users"',
    'CREATE INDEX IF NOT EXISTS users_tenant ON "users" ("tenant")',
]
POSTGRES_DROP = ["ALTER TABLE users DROP CONSTRAINT IF EXISTS users_email_key"]
INDEXES = [
    "CREATE UNIQUE INDEX IF NOT EXISTS users_tenant_email ON users (tenant, email) "
    "WHERE tenant IS NOT NULL",
    "CREATE UNIQUE INDEX IF NOT EXISTS users_agency_email ON users (email) WHERE tenant IS NULL",
    "CREATE INDEX IF NOT EXISTS users_email ON users (email)",
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="tenants", description=DESCRIPTION)

    async def per_tenant_emails() -> None:
        engine = engine_finder()
        assert engine is not None
        first = SQLITE_REBUILD if isinstance(engine, SQLiteEngine) else POSTGRES_DROP
        for statement in [*first, *INDEXES]:  # in the migration's own transaction
            await engine.run_ddl(statement)

    manager.add_raw(per_tenant_emails)
    return manager
