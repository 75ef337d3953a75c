"""Tenant-owned rows are reached only through TenantScope, including the bulk path.

A query like `Invoice.select()`, or a bulk call handed a raw tenant id, would bypass the
tenant filter; this walks the code of every room and names any such call. A probe found
such side doors (bulk updates filtered by id only, onboarding writing by tenant id) where
the earlier version of this test did not look.

The tenancy room's own agency-level work is the only exception, listed function by function:
authentication (it finds the caller before any scope exists), onboarding and offboarding a
tenant, agency users, the audit log's writer, and the scope and bulk modules themselves.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from piccolo.table import Table

import backend.tables
import tenants.tables
from tenants.bulk import is_tenant_owned

ROOT = Path(__file__).resolve().parents[2]
TENANT_OWNED = {
    cls.__name__
    for module in (backend.tables, tenants.tables)
    for cls in vars(module).values()
    if isinstance(cls, type) and issubclass(cls, Table) and cls is not Table
    if is_tenant_owned(cls)
}
QUERY_METHODS = {
    "select",
    "objects",
    "update",
    "delete",
    "count",
    "exists",
    "insert",
    "raw",
    "first",
}
# (file, function) pairs allowed to touch tenant-owned tables directly; "*" is the whole file.
DOORS = {
    ("tenants/scope.py", "*"),
    ("tenants/bulk.py", "*"),
    ("tenants/audit.py", "record"),
    ("tenants/audit.py", "agency_entries"),
    ("tenants/auth.py", "login"),
    ("tenants/auth.py", "_principal_for_key"),
    ("tenants/auth.py", "_principal_for_session"),
    ("tenants/onboarding.py", "onboard"),
    ("tenants/onboarding.py", "offboard"),
    ("tenants/onboarding.py", "create_agency_user"),
    ("tenants/onboarding.py", "agency_user_exists"),
    ("tenants/onboarding.py", "is_active_agency_user"),
}


def offending_calls(source: str) -> list[tuple[str, str]]:
    """(enclosing function, description) of each direct or bulk call on a tenant-owned table."""
    found = []
    tree = ast.parse(source)
    for function in [tree, *ast.walk(tree)]:
        if function is not tree and not isinstance(
            function, ast.FunctionDef | ast.AsyncFunctionDef
        ):
            continue
        name = getattr(function, "name", "<module>")
        body = (
            function.body
            if function is not tree
            else [n for n in tree.body if not isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        )
        for node in (n for stmt in body for n in ast.walk(stmt)):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            owner = node.func.value
            if (
                node.func.attr in QUERY_METHODS
                and isinstance(owner, ast.Name)
                and owner.id in TENANT_OWNED
            ):
                found.append((name, f"line {node.lineno}: {owner.id}.{node.func.attr}()"))
            if isinstance(owner, ast.Name) and owner.id == "bulk":
                private = node.func.attr.startswith("_")
                table = node.args[0] if node.args else None
                owned = isinstance(table, ast.Name) and table.id in TENANT_OWNED
                if private or owned:
                    found.append((name, f"line {node.lineno}: bulk.{node.func.attr}()"))
    return sorted(set(found))


def _sources() -> list[Path]:
    files = [
        p
        for room in ("backend", "frontend_api", "tenants")
        for p in (ROOT / room).rglob("*.py")
        if "piccolo_migrations" not in p.parts
    ]
    assert files
    return files


def test_no_code_reaches_a_tenant_owned_table_but_through_the_scope():
    problems = {}
    for path in _sources():
        relative = str(path.relative_to(ROOT))
        if (relative, "*") in DOORS:
            continue
        bad = [
            what
            for function, what in offending_calls(path.read_text())
            if (relative, function) not in DOORS
        ]
        if bad:
            problems[relative] = bad
    assert not problems


def test_nothing_outside_the_scope_imports_the_private_bulk_functions():
    for path in _sources():
        if path.name in ("scope.py", "bulk.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "tenants.bulk":
                assert all(not a.name.startswith("_") for a in node.names), path


def test_the_tables_are_found():
    assert {"Invoice", "Payment", "Debtor", "User", "ApiKey", "AuditEntry"} <= TENANT_OWNED
    assert "Tenant" not in TENANT_OWNED and "IdempotencyRecord" not in TENANT_OWNED


def test_the_check_catches_a_direct_query_and_a_bulk_side_door():
    assert offending_calls("async def f():\n    await Invoice.select().where(Invoice.amount > 0)\n")
    assert not offending_calls("async def f(scope):\n    await scope.select(Invoice)\n")
    assert offending_calls(
        "async def f(t):\n    await bulk._update_many(Invoice, t, 'id', [], [])\n"
    )
    assert offending_calls("async def f():\n    await bulk.upsert(Payment, (), [], (), ())\n")
    assert not offending_calls(
        "async def f():\n    await bulk.upsert(IdempotencyRecord, (), [], (), ())\n"
    )
    assert offending_calls("x = User.select()\n") == [("<module>", "line 1: User.select()")]


async def test_bulk_upsert_refuses_a_tenant_owned_table():
    from backend.tables import Invoice
    from tenants import bulk

    with pytest.raises(TypeError, match="tenant-owned"):
        await bulk.upsert(Invoice, ("id",), [("x",)], ("id",), ())
