"""The bulk path: many rows in one statement, bypassing the ORM where it is slow.

PostgreSQL gets COPY into a staging table and one `INSERT … SELECT … ON CONFLICT`; SQLite an
`executemany` of the same upsert inside the caller's IMMEDIATE transaction. Rows are tuples
in the column order the caller names. Must run inside `write_transaction()`.

Tenant-owned tables are reached only through `TenantScope`'s bulk methods, which stamp and
filter the tenant themselves: `upsert` here refuses a tenant-owned table, and the functions
that take a tenant id are private to the scope (a unit test walks the code to make sure).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from piccolo.columns import Column
from piccolo.table import Table

from tenants.transactions import engine, is_sqlite

_PG_ARRAY_TYPES = {
    "UUID": "uuid[]",
    "VARCHAR": "text[]",
    "TEXT": "text[]",
    "DATE": "date[]",
    "BIGINT": "bigint[]",
    "INTEGER": "integer[]",
    "BOOLEAN": "boolean[]",
    "TIMESTAMPTZ": "timestamptz[]",
}


def _array_type(table: type[Table], column: str) -> str:
    column_type = table._meta.get_column_by_name(column).column_type
    return _PG_ARRAY_TYPES[column_type.split("(")[0]]


def _connection() -> Any:
    transaction = engine().current_transaction.get()
    if transaction is None:
        raise RuntimeError("bulk writes must run inside write_transaction()")
    return transaction.connection


def is_tenant_owned(table: type[Table]) -> bool:
    column = getattr(table, "tenant", None)
    return isinstance(column, Column) and column._meta.name == "tenant"


async def upsert(
    table: type[Table],
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    conflict: Sequence[str],
    update: Sequence[str],
) -> None:
    """Insert rows of a table no tenant owns; on a conflict over `conflict`, overwrite the
    `update` columns. (A tenant's rows go through `TenantScope.upsert`.)"""
    if is_tenant_owned(table):
        raise TypeError(f"{table.__name__} is tenant-owned: upsert through its TenantScope")
    await _upsert(table, columns, rows, conflict, update)


async def _upsert(
    table: type[Table],
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    conflict: Sequence[str],
    update: Sequence[str],
) -> None:
    if not rows:
        return
    name = table._meta.tablename
    column_list = ", ".join(columns)
    on_conflict = (
        f"ON CONFLICT ({', '.join(conflict)}) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in update)
        if update
        else f"ON CONFLICT ({', '.join(conflict)}) DO NOTHING"
    )
    connection = _connection()
    if is_sqlite():
        marks = ", ".join("?" * len(columns))
        await connection.executemany(
            f"INSERT INTO {name} ({column_list}) VALUES ({marks}) {on_conflict}", rows
        )
        return
    # COPY into a per-session staging table, then one INSERT … SELECT: COPY's binary
    # encoding is cheaper than binding one array per column.
    stage = f"_stage_{name}"
    await connection.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {name} INCLUDING DEFAULTS) "
        "ON COMMIT DELETE ROWS"
    )
    await connection.copy_records_to_table(stage, records=rows, columns=list(columns))
    await connection.execute(
        f"INSERT INTO {name} ({column_list}) SELECT {column_list} FROM {stage} {on_conflict}"
    )


async def _update_many(
    table: type[Table],
    tenant_id: Any,
    key: str,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
) -> None:
    """`UPDATE table SET columns… WHERE key = … AND tenant = tenant_id` for each row (key
    value last in each tuple): a key of another tenant's row updates nothing."""
    if not rows:
        return
    name = table._meta.tablename
    connection = _connection()
    if is_sqlite():
        sets = ", ".join(f"{c} = ?" for c in columns)
        await connection.executemany(
            f"UPDATE {name} SET {sets} WHERE {key} = ? AND tenant = ?",
            [(*row, str(tenant_id)) for row in rows],
        )
        return
    all_columns = [*columns, key]
    types = [_array_type(table, c) for c in all_columns]
    sets = ", ".join(f"{c} = data.{c}" for c in columns)
    arrays = ", ".join(f"${i + 1}::{t}" for i, t in enumerate(types))
    await connection.execute(
        f"UPDATE {name} SET {sets} FROM (SELECT * FROM unnest({arrays}) "
        f"AS t({', '.join(all_columns)})) AS data WHERE {name}.{key} = data.{key} "
        f"AND {name}.tenant = ${len(all_columns) + 1}",
        *[list(column) for column in zip(*rows, strict=True)],
        tenant_id,
    )


async def _fetch_where_in(
    table: type[Table],
    columns: Sequence[str],
    tenant_id: Any,
    column: str,
    values: Sequence[Any],
) -> list[dict[str, Any]]:
    """Rows of one tenant whose `column` is one of `values` (one parameter, any count)."""
    if not values:
        return []
    name = table._meta.tablename
    select = ", ".join(columns)
    connection = _connection()
    if is_sqlite():
        cursor = await connection.execute(
            f"SELECT {select} FROM {name} WHERE tenant = ? "
            f"AND {column} IN (SELECT value FROM json_each(?))",
            (str(tenant_id), json.dumps([str(v) for v in values])),
        )
        return [dict(row) for row in await cursor.fetchall()]
    array_type = _array_type(table, column)
    records = await connection.fetch(
        f"SELECT {select} FROM {name} WHERE tenant = $1 AND {column} = ANY($2::{array_type})",
        tenant_id,
        list(values),
    )
    return [dict(record) for record in records]


def _column_as(column: str, days: Sequence[str], text: Sequence[str]) -> str:
    """A date as its day number since 1970-01-01, a key as text, in this engine's SQL."""
    if column in days:
        if is_sqlite():
            return f"CAST(julianday({column}) - 2440587.5 AS INTEGER)"
        return f"({column} - DATE '1970-01-01')"
    if column in text and not is_sqlite():  # SQLite keeps UUIDs as text already
        return f"{column}::text"
    return column


async def _columns(
    table: type[Table],
    tenant_id: Any,
    columns: Sequence[str],
    order_by: Sequence[str],
    days: Sequence[str] = (),
    text: Sequence[str] = (),
) -> list[list[Any]]:
    """Every row of one tenant as one list per column, straight from the driver: reading a
    whole book into arrays through the ORM's dicts costs ten times as much. Columns in
    `days` come as day numbers and those in `text` as strings, converted by the database
    (a million dates or UUIDs made into Python objects first cost seconds)."""
    known = {column._meta.db_column_name for column in table._meta.columns}
    unknown = [c for c in (*columns, *order_by) if c not in known]
    if unknown:
        raise ValueError(f"{table.__name__} has no column {unknown[0]!r}")
    name = table._meta.tablename
    select = ", ".join(_column_as(c, days, text) for c in columns)
    order = f" ORDER BY {', '.join(order_by)}" if order_by else ""
    connection = _connection()
    if is_sqlite():
        cursor = await connection.execute(
            f"SELECT {select} FROM {name} WHERE tenant = ?{order}", (str(tenant_id),)
        )
        # Piccolo's SQLite connections hand rows back as dicts: their values, in order.
        rows: Sequence[Any] = [tuple(row.values()) for row in await cursor.fetchall()]
    else:
        rows = await connection.fetch(
            f"SELECT {select} FROM {name} WHERE tenant = $1{order}", tenant_id
        )
    if not rows:
        return [[] for _ in columns]
    return [list(column) for column in zip(*rows, strict=True)]


async def _fold(table: type[Table], tenant_id: Any, keys: Sequence[str], value: str) -> None:
    """Sum one tenant's rows of an additive table that share `keys` into one row each
    (PostgreSQL; SQLite's such tables keep one row per key by an upsert already).

    One statement, `DELETE … RETURNING` feeding the `INSERT`: rows other transactions
    append meanwhile are not in its snapshot and stay as they are, so every sum holds at
    every moment, and two folds at once delete each row only once."""
    if is_sqlite():
        return
    name = table._meta.tablename
    key_list = ", ".join(keys)
    await _connection().execute(
        f"WITH gone AS (DELETE FROM {name} WHERE tenant = $1 "
        f"RETURNING tenant, {key_list}, {value}) "
        f"INSERT INTO {name} (tenant, {key_list}, {value}) "
        f"SELECT tenant, {key_list}, SUM({value}) FROM gone GROUP BY tenant, {key_list} "
        f"HAVING SUM({value}) <> 0",
        tenant_id,
    )


async def _advisory_lock(key: str) -> None:
    """Serialise writers of one key for the rest of the transaction (PostgreSQL only).

    SQLite's IMMEDIATE transaction already admits one writer at a time; on PostgreSQL two
    overlapping batches of one tenant would otherwise both count a new row as created.
    """
    if is_sqlite():
        return
    await _connection().execute("SELECT pg_advisory_xact_lock(hashtext($1))", key)
