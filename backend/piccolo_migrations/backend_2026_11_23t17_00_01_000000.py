"""The triggers that keep `book_months` (backend.tables.BookMonth) equal to the book, and
its first fill from the rows already there.

Triggers rather than calls in ingest, imports, settlement and the dunning engine: every
statement that writes `invoices`, `payments` or `dunning_steps` counts, whichever module
(or a bulk `COPY`, a benchmark's `INSERT … SELECT`, a foreign key's cascade) makes it.

What a row adds (a delete subtracts it, an update subtracts the old and adds the new):
- a live invoice: its amount to `invoiced` in its issue month and to `due` in its due month;
- a payment: its amount to `cash_in` in its paid month, and when it pays a live invoice,
  to `paid_d0`/`paid_d30`/`paid_d60`/`paid_d90` of the invoice's due month, by days from
  the due date to the payment (≤ 0, 1–30, 31–60, 61–90; later ones are not kept);
- a dunning step not failed or skipped: its fee to `fees` in its run month.
An invoice whose due date or origin changes moves its payments' buckets with it.

PostgreSQL: inserts and payment updates by statement-level triggers reading the statement's
transition table, so a bulk write of 100 000 rows adds a handful of summed rows; updates of
invoices and steps and all deletes row by row, only when a counted column changes (the
daily interest update touches none of them). Each statement *appends* its change (no row
is updated by two writers, so concurrent writers never wait for or deadlock on each
other); `backend.book_months.compact` folds a tenant's rows. SQLite (one writer at a time)
adds into the one row per (tenant, month, measure) with an upsert.

A tenant being erased (offboarding's cascade) is skipped: its rows go with it.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder
from piccolo.engine.postgres import PostgresEngine

ID = "2026-11-23T17:00:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "book_months kept by triggers, filled from the book"

BUCKET = (
    "CASE WHEN {days} <= 0 THEN 'paid_d0' WHEN {days} <= 30 THEN 'paid_d30' "
    "WHEN {days} <= 60 THEN 'paid_d60' WHEN {days} <= 90 THEN 'paid_d90' END"
)
COUNTED_STEP = "status NOT IN ('failed', 'skipped')"


def _part(tenant: str, month: str, measure: str, value: str, rest: str) -> str:
    return (
        f"SELECT {tenant} AS tenant, {month} AS month, {measure} AS measure, "
        f"{value} AS value {rest}"
    )


class Dialect:
    def __init__(self, postgres: bool) -> None:
        self.postgres = postgres

    def month(self, day: str) -> str:
        if self.postgres:
            return f"date_trunc('month', {day})::date"
        return f"date({day}, 'start of month')"

    def bucket(self, paid: str, due: str) -> str:
        days = f"({paid} - {due})" if self.postgres else f"(julianday({paid}) - julianday({due}))"
        return BUCKET.format(days=days)

    def distinct(self, a: str, b: str) -> str:
        return f"{a} IS DISTINCT FROM {b}" if self.postgres else f"{a} IS NOT {b}"

    def invoice(self, rows: str, sign: str) -> list[str]:
        """An invoice's own contributions (`rows`: a relation, or OLD/NEW in a row trigger)."""
        source = "" if rows in ("OLD", "NEW") else f"FROM {rows} "
        live = f"{source}WHERE {rows}.origin = 'live'"
        return [
            _part(
                f"{rows}.tenant",
                self.month(f"{rows}.issue_date"),
                "'invoiced'",
                f"{sign}{rows}.amount",
                live,
            ),
            _part(
                f"{rows}.tenant",
                self.month(f"{rows}.due_date"),
                "'due'",
                f"{sign}{rows}.amount",
                live,
            ),
        ]

    def invoice_payments(self, rows: str, sign: str) -> str:
        """The paid buckets of the payments on the invoice(s) `rows`."""
        source = "" if rows in ("OLD", "NEW") else f", {rows}"
        return _part(
            f"{rows}.tenant",
            self.month(f"{rows}.due_date"),
            self.bucket("p.paid_date", f"{rows}.due_date"),
            f"{sign}p.amount",
            f"FROM payments p{source} WHERE p.invoice = {rows}.id AND {rows}.origin = 'live'",
        )

    def payment(self, rows: str, sign: str) -> list[str]:
        source = "" if rows in ("OLD", "NEW") else f"FROM {rows}"
        join = "" if rows in ("OLD", "NEW") else f", {rows}"
        return [
            _part(
                f"{rows}.tenant",
                self.month(f"{rows}.paid_date"),
                "'cash_in'",
                f"{sign}{rows}.amount",
                source,
            ),
            _part(
                "i.tenant",
                self.month("i.due_date"),
                self.bucket(f"{rows}.paid_date", "i.due_date"),
                f"{sign}{rows}.amount",
                f"FROM invoices i{join} WHERE i.id = {rows}.invoice AND i.origin = 'live'",
            ),
        ]

    def step(self, rows: str, sign: str) -> list[str]:
        source = "" if rows in ("OLD", "NEW") else f"FROM {rows} "
        return [
            _part(
                f"{rows}.tenant",
                self.month(f"{rows}.run_date"),
                "'fees'",
                f"{sign}{rows}.fee",
                f"{source}WHERE {rows}.{COUNTED_STEP}",
            )
        ]

    def add(self, parts: list[str]) -> str:
        """One INSERT of the parts' sums per (tenant, month, measure)."""
        union = "\nUNION ALL\n".join(parts)
        insert = (
            "INSERT INTO book_months (tenant, month, measure, value) "
            f"SELECT tenant, month, measure, SUM(value) FROM ({union}) AS change "
            "WHERE measure IS NOT NULL GROUP BY tenant, month, measure HAVING SUM(value) <> 0"
        )
        if self.postgres:
            return insert
        return (
            insert + " ON CONFLICT (tenant, month, measure) "
            "DO UPDATE SET value = book_months.value + excluded.value"
        )

    def changed(self, columns: tuple[str, ...], old: str = "OLD", new: str = "NEW") -> str:
        return " OR ".join(self.distinct(f"{old}.{c}", f"{new}.{c}") for c in columns)


INVOICE_COLUMNS = ("amount", "issue_date", "due_date", "origin", "tenant")
PAYMENT_COLUMNS = ("amount", "paid_date", "invoice", "tenant")
STEP_COLUMNS = ("fee", "run_date", "status", "tenant")


def backfill(d: Dialect) -> str:
    return d.add(
        [
            *d.invoice("invoices", ""),
            d.invoice_payments("invoices", ""),
            d.payment("payments", "")[0],
            *d.step("dunning_steps", ""),
        ]
    )


def postgres_statements() -> list[str]:
    d = Dialect(postgres=True)
    # The payments a statement changed, before and after, matched by id.
    moved = "SELECT {side}.* FROM {side} JOIN {other} ON {other}.id = {side}.id WHERE " + d.changed(
        PAYMENT_COLUMNS, "old_rows", "new_rows"
    )
    erased = "IF NOT EXISTS (SELECT 1 FROM tenants WHERE id = OLD.tenant) THEN RETURN OLD; END IF;"
    functions = {
        # name: (body, what the trigger returns, a first statement)
        "invoices_added": (d.add(d.invoice("added", "")), "NULL", ""),
        "invoices_changed": (
            d.add(
                [
                    *d.invoice("OLD", "-"),
                    d.invoice_payments("OLD", "-"),
                    *d.invoice("NEW", ""),
                    d.invoice_payments("NEW", ""),
                ]
            ),
            "NULL",
            "",
        ),
        "invoices_removed": (
            d.add([*d.invoice("OLD", "-"), d.invoice_payments("OLD", "-")]),
            "OLD",
            erased,
        ),
        "payments_added": (d.add(d.payment("added", "")), "NULL", ""),
        "payments_changed": (
            "WITH was AS ("
            + moved.format(side="old_rows", other="new_rows")
            + "), became AS ("
            + moved.format(side="new_rows", other="old_rows")
            + ") "
            + d.add([*d.payment("was", "-"), *d.payment("became", "")]),
            "NULL",
            "",
        ),
        "payments_removed": (d.add(d.payment("OLD", "-")), "OLD", erased),
        "steps_added": (d.add(d.step("added", "")), "NULL", ""),
        "steps_changed": (d.add([*d.step("OLD", "-"), *d.step("NEW", "")]), "NULL", ""),
        "steps_removed": (d.add(d.step("OLD", "-")), "OLD", erased),
    }
    statements = [
        "CREATE INDEX IF NOT EXISTS book_months_by_tenant ON book_months (tenant, month) "
        "INCLUDE (measure, value)"
    ]
    for name, (body, returns, first) in functions.items():
        statements.append(
            f"CREATE OR REPLACE FUNCTION book_months_{name}() RETURNS trigger "
            f"LANGUAGE plpgsql AS $$\nBEGIN\n{first}\n{body};\nRETURN {returns};\nEND\n$$"
        )
    for table, short, changed in (
        (
            "invoices",
            "invoices",
            f"UPDATE OF {', '.join(INVOICE_COLUMNS)} ON invoices FOR EACH ROW "
            f"WHEN ({d.changed(INVOICE_COLUMNS)})",
        ),
        (
            "payments",
            "payments",
            "UPDATE ON payments REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
            "FOR EACH STATEMENT",
        ),
        (
            "dunning_steps",
            "steps",
            f"UPDATE OF {', '.join(STEP_COLUMNS)} ON dunning_steps FOR EACH ROW "
            f"WHEN ({d.changed(STEP_COLUMNS)})",
        ),
    ):
        statements += [
            f"CREATE TRIGGER book_months_{short}_added AFTER INSERT ON {table} "
            f"REFERENCING NEW TABLE AS added FOR EACH STATEMENT "
            f"EXECUTE FUNCTION book_months_{short}_added()",
            f"CREATE TRIGGER book_months_{short}_changed AFTER {changed} "
            f"EXECUTE FUNCTION book_months_{short}_changed()",
            f"CREATE TRIGGER book_months_{short}_removed BEFORE DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION book_months_{short}_removed()",
        ]
    statements.append(backfill(d))
    return statements


def sqlite_statements() -> list[str]:
    d = Dialect(postgres=False)
    statements = [
        "CREATE UNIQUE INDEX IF NOT EXISTS book_months_key ON book_months (tenant, month, measure)"
    ]
    for table, short, columns, added, changed, removed in (
        (
            "invoices",
            "invoices",
            INVOICE_COLUMNS,
            d.invoice("NEW", ""),
            [
                *d.invoice("OLD", "-"),
                d.invoice_payments("OLD", "-"),
                *d.invoice("NEW", ""),
                d.invoice_payments("NEW", ""),
            ],
            [*d.invoice("OLD", "-"), d.invoice_payments("OLD", "-")],
        ),
        (
            "payments",
            "payments",
            PAYMENT_COLUMNS,
            d.payment("NEW", ""),
            [*d.payment("OLD", "-"), *d.payment("NEW", "")],
            d.payment("OLD", "-"),
        ),
        (
            "dunning_steps",
            "steps",
            STEP_COLUMNS,
            d.step("NEW", ""),
            [*d.step("OLD", "-"), *d.step("NEW", "")],
            d.step("OLD", "-"),
        ),
    ):
        statements += [
            f"CREATE TRIGGER IF NOT EXISTS book_months_{short}_added AFTER INSERT ON {table} "
            f"FOR EACH ROW BEGIN {d.add(added)}; END",
            f"CREATE TRIGGER IF NOT EXISTS book_months_{short}_changed AFTER UPDATE OF "
            f"{', '.join(columns)} ON {table} FOR EACH ROW WHEN {d.changed(columns)} "
            f"BEGIN {d.add(changed)}; END",
            f"CREATE TRIGGER IF NOT EXISTS book_months_{short}_removed BEFORE DELETE ON {table} "
            f"FOR EACH ROW WHEN EXISTS (SELECT 1 FROM tenants t WHERE t.id = OLD.tenant) "
            f"BEGIN {d.add(removed)}; END",
        ]
    statements.append(backfill(d))
    return statements


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="backend", description=DESCRIPTION)

    async def install() -> None:
        engine = engine_finder()
        assert engine is not None
        postgres = isinstance(engine, PostgresEngine)
        for statement in postgres_statements() if postgres else sqlite_statements():
            await engine.run_ddl(statement)

    async def uninstall() -> None:
        """Backwards: the triggers (and on PostgreSQL their functions) go before the table
        they write to can go; left behind, every insert into the book would fail."""
        engine = engine_finder()
        assert engine is not None
        postgres = isinstance(engine, PostgresEngine)
        for short, table in (
            ("invoices", "invoices"),
            ("payments", "payments"),
            ("steps", "dunning_steps"),
        ):
            for event in ("added", "changed", "removed"):
                name = f"book_months_{short}_{event}"
                on = f" ON {table}" if postgres else ""
                await engine.run_ddl(f"DROP TRIGGER IF EXISTS {name}{on}")
                if postgres:
                    await engine.run_ddl(f"DROP FUNCTION IF EXISTS {name}()")

    manager.add_raw(install)
    manager.add_raw_backwards(uninstall)
    return manager
