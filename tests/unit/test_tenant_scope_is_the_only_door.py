"""Handlers reach tenant-owned tables only through TenantScope (or the tenant-keyed bulk path).

A query like `Invoice.select()` in backend/ or frontend_api/ would bypass the tenant filter;
this walks the code and names any such call.
"""

from __future__ import annotations

import ast
from pathlib import Path

from backend.tables import Debtor, Invoice, InvoiceEvent, Payment
from tenants.tables import ApiKey, AuditEntry, User

ROOT = Path(__file__).resolve().parents[2]
TENANT_OWNED = {
    t.__name__ for t in (Debtor, Invoice, InvoiceEvent, Payment, ApiKey, User, AuditEntry)
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


def offending_calls(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in QUERY_METHODS
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in TENANT_OWNED
        ):
            found.append(f"line {node.lineno}: {node.func.value.id}.{node.func.attr}()")
    return found


def test_no_handler_queries_a_tenant_owned_table_directly():
    files = [
        p
        for room in ("backend", "frontend_api")
        for p in (ROOT / room).rglob("*.py")
        if "piccolo_migrations" not in p.parts
    ]
    assert files
    problems = {str(p.relative_to(ROOT)): offending_calls(p.read_text()) for p in files}
    assert not {k: v for k, v in problems.items() if v}


def test_the_check_catches_a_direct_query():
    assert offending_calls("async def f():\n    await Invoice.select().where(Invoice.amount > 0)\n")
    assert not offending_calls("async def f(scope):\n    await scope.select(Invoice)\n")
