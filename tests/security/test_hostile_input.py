"""Hostile input gets a clear 4xx and writes nothing; a 500 is a bug.

The findings of issue 11 (deep nesting, bytes that are not UTF-8, sums past a BIGINT,
cursors past the calendar, NUL where PostgreSQL text cannot hold it) each have a test of
their own. Then a sweep walks the app's own route table and OpenAPI document: every body
route gets malformed bodies and every leaf of a valid body replaced by hostile values,
every query parameter hostile values, every path parameter bad ids. Nothing may answer
5xx, and an answer of 4xx must leave the tenant's rows exactly as they were.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
import re
import secrets
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from piccolo.engine.postgres import PostgresEngine

from backend.app import create_app
from tenants.tables import Tenant
from tests.support.db import TENANT_OWNED, book_counts, row_counts
from tests.support.server import LiveServer
from tests.support.world import agency_user, invoice, onboard, payment

DEEP = 100_000
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def hostile_server(migrated) -> Iterator[LiveServer]:
    """A server of our own whose rate limit does not cut the sweep short."""
    live = LiveServer(KRAVLAB_RATE_LIMIT_PER_MINUTE="1000000").start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
async def http(hostile_server):
    async with httpx.AsyncClient(base_url=hostile_server.url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
async def boss(http):
    return await agency_user(http)


@pytest.fixture
async def victim(http, boss):
    return await onboard(http, boss)


def cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def assert_clear_4xx(response: httpx.Response, *statuses: int) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    if statuses:
        assert response.status_code in statuses, (response.status_code, response.text[:500])
    body = response.json()
    assert body["status"] == response.status_code and body["message"], body


# --- the findings, one by one ------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"invoices": ' + b"[" * DEEP + b"]" * DEEP + b"}",
        b'{"invoices": [' + b'{"a":' * DEEP + b"1" + b"}" * DEEP + b"]}",
        b"[" * DEEP + b"]" * DEEP,
        b'{"invoices": [{"external_id": ' + b"[" * DEEP + b"]" * DEEP + b"}]}",
    ],
    ids=["arrays", "objects", "top", "in-a-field"],
)
async def test_deep_nesting_is_a_400(http, victim, body):
    r = await http.post(
        victim.path("/invoices/batch"), content=body, headers={**victim.key, **JSON}
    )
    assert_clear_4xx(r, 400)
    assert await book_counts(victim.id) == (0, 0, 0)


async def test_deep_nesting_in_a_patch_and_a_login_is_a_400(http, boss, victim):
    before = await row_counts(victim.id)
    for body in (
        b'{"name": ' + b"[" * DEEP + b"]" * DEEP + b"}",
        b'{"name": "x", "status": ' + b'{"a":' * DEEP + b"1" + b"}" * DEEP + b"}",
    ):
        r = await http.patch(f"/api/v1/tenants/{victim.id}", content=body, headers={**boss, **JSON})
        assert_clear_4xx(r, 400)
    r = await http.post(
        "/api/v1/auth/login", content=b'{"email": ' + b"[" * DEEP + b"]" * DEEP + b"}", headers=JSON
    )
    assert_clear_4xx(r, 400)
    assert await row_counts(victim.id) == before
    got = (await http.get(f"/api/v1/tenants/{victim.id}", headers=boss)).json()
    assert got["name"] == f"Tenant {victim.slug}"


@pytest.mark.parametrize(
    "body",
    [
        b'{"invoices": [{"external_id": "\xff\xfe"}]}',
        b'{"invoices": [], "\xc3": 1}',
        b"\xef\xbb\xbf{}",  # a byte-order mark is not JSON
        b"\x00",
    ],
)
async def test_bytes_that_are_not_utf8_json_are_a_400(http, boss, victim, body):
    before = await row_counts(victim.id)
    r = await http.post(
        victim.path("/invoices/batch"), content=body, headers={**victim.key, **JSON}
    )
    assert_clear_4xx(r, 400)
    r = await http.patch(f"/api/v1/tenants/{victim.id}", content=body, headers={**boss, **JSON})
    assert_clear_4xx(r, 400)
    r = await http.post("/api/v1/auth/login", content=body, headers=JSON)
    assert_clear_4xx(r, 400)
    assert await row_counts(victim.id) == before


async def test_payments_that_would_sum_past_a_bigint_are_refused(http, victim):
    r = await http.post(
        victim.path("/invoices/batch"),
        json={"invoices": [invoice("BIG", amount=10**15)]},
        headers=victim.key,
    )
    assert r.status_code == 200, r.text
    rows = [payment(f"P{i}", 10**15, invoice_external_id="BIG") for i in range(9_999)]
    r = await http.post(victim.path("/payments/batch"), json={"payments": rows}, headers=victim.key)
    assert_clear_4xx(r, 422)
    paths = [e["path"] for e in r.json()["errors"]]
    assert paths and all(p.startswith("payments[") and p.endswith("].amount") for p in paths)
    assert await book_counts(victim.id) == (1, 1, 0)
    got = (await http.get(victim.path("/invoices?external_id=BIG"), headers=victim.key)).json()
    assert got["items"][0]["paid_amount"] == 0


async def test_waiting_payments_that_would_sum_past_a_bigint_refuse_their_invoice(
    http, boss, victim
):
    # Paid last month: the month's cash-in (about 10^19) is summed into book_months.
    paid = date.today().replace(day=1) - timedelta(days=1)
    rows = [payment(f"W{i}", 10**15, invoice_external_id="LATE", paid=paid) for i in range(9_999)]
    r = await http.post(victim.path("/payments/batch"), json={"payments": rows}, headers=victim.key)
    assert r.status_code == 200 and r.json()["unmatched"] == 9_999, r.text
    # The figures over it answer: PostgreSQL sums past 2^63, SQLite says it cannot (409).
    for path in (f"/api/v1/portfolio/trend?client={victim.id}", "/api/v1/portfolio"):
        r = await http.get(path, headers=boss)
        if r.status_code != 200:
            assert_clear_4xx(r, 409)
        elif "trend" in path:
            month = f"{paid:%Y-%m}"
            (series,) = r.json()["series"]
            assert [m["cash_in"] for m in series["months"] if m["month"] == month] == [
                9_999 * 10**15
            ]
    r = await http.post(
        victim.path("/invoices/batch"),
        json={"invoices": [invoice("OTHER"), invoice("LATE", amount=10**15)]},
        headers=victim.key,
    )
    assert_clear_4xx(r, 422)
    assert [e["path"] for e in r.json()["errors"]] == ["invoices[1].external_id"]
    assert await book_counts(victim.id) == (0, 0, 9_999)


@pytest.mark.parametrize(
    "moment",
    [
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59.999999-00:01",
        "not a time",
        "2026-13-01T00:00:00",
    ],
)
async def test_audit_cursors_past_the_calendar_are_a_422(http, boss, victim, moment):
    cursor = cursor_of(f"{moment}|{uuid.uuid4()}")
    r = await http.get(victim.path(f"/audit?cursor={cursor}"), headers=victim.key)
    assert_clear_4xx(r, 422)
    assert r.json()["errors"][0]["path"] == "cursor"
    r = await http.get(f"/api/v1/audit?cursor={cursor}", headers=boss)
    assert_clear_4xx(r, 422)


async def test_audit_cursors_of_the_service_still_page(http, victim):
    for i in range(3):
        r = await http.post(
            victim.path("/invoices/batch"),
            json={"invoices": [invoice(f"A{i}")]},
            headers=victim.key,
        )
        assert r.status_code == 200
    seen, cursor = [], None
    while True:
        url = victim.path("/audit?limit=1") + (f"&cursor={cursor}" if cursor else "")
        page = (await http.get(url, headers=victim.key)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) >= 4


async def test_nul_in_login_email_is_a_422(http):
    for email in ("a\x00b@example.test", "\x00", "admin@example.test\x00"):
        r = await http.post("/api/v1/auth/login", json={"email": email, "password": "x" * 12})
        assert_clear_4xx(r, 422)


@pytest.mark.parametrize(
    "query",
    [
        "/invoices?external_id=a%00b",
        "/invoices?debtor=a%00b",
        "/invoices?debtor=%00",
        f"/invoices?cursor={cursor_of('2026-01-01|' + str(uuid.uuid4()) + chr(0))}",
        f"/payments?cursor={cursor_of(chr(0))}",
        f"/audit?cursor={cursor_of('2026-01-01T00:00:00' + chr(0) + '|' + str(uuid.uuid4()))}",
    ],
)
async def test_nul_in_query_filters_and_cursors_is_a_422(http, victim, query):
    r = await http.get(victim.path(query), headers=victim.key)
    assert_clear_4xx(r, 422)


async def test_nul_in_a_tenant_list_cursor_is_a_422(http, boss):
    r = await http.get(f"/api/v1/tenants?cursor={cursor_of('a' + chr(0) + 'b')}", headers=boss)
    assert_clear_4xx(r, 422)


async def test_a_trailing_line_break_is_not_an_email(http, boss, victim):
    before = await row_counts(victim.id)
    r = await http.post(
        victim.path("/users"), json={"email": "new@b.se\n", "role": "tenant_member"}, headers=boss
    )
    assert_clear_4xx(r, 422)
    assert [e["path"] for e in r.json()["errors"]] == ["email"]
    assert await row_counts(victim.id) == before


async def test_a_trailing_line_break_is_not_single_line_text(http, victim):
    rows = [invoice("F-1\n"), invoice("F-2", reference="R\n")]
    rows[0]["debtor"]["name"] = "Name\n"
    rows[1]["debtor"]["email"] = "a@b.se\n"
    r = await http.post(victim.path("/invoices/batch"), json={"invoices": rows}, headers=victim.key)
    assert_clear_4xx(r, 422)
    assert {e["path"] for e in r.json()["errors"]} == {
        "invoices[0].external_id",
        "invoices[0].debtor.name",
        "invoices[1].reference",
        "invoices[1].debtor.email",
    }


# --- the sweep ---------------------------------------------------------------------------

T = "/api/v1/tenants/{tenant_id}"

BAD_BODIES = [
    b"",
    b" ",
    b"null",
    b"[]",
    b"{}",
    b'"x"',
    b"0",
    b"1e999",
    b"{" * 10,
    b'{"a": 1, "a": 2}',
    b'{"\\u0000": "\\u0000"}',
    b"[" * DEEP + b"]" * DEEP,
    b'{"x": ' + b'{"a":' * DEEP + b"1" + b"}" * DEEP + b"}",
    b'"\\ud800"',
    b"\xff\xfe\xfd",
    b'{"name": "\xc0\xaf"}',
]

HOSTILE_LEAVES: list[Any] = [
    "",
    "\x00",
    "a\x00b",
    "x\n",
    "\u202e\u200b\ufeff",
    "🧾" * 300,
    "x" * 100_000,
    "\ud800",
    -1,
    0,
    2**63,
    -(2**63) - 1,
    10**40,
    1.5,
    -1e308,
    True,
    None,
    [],
    {},
    "9999-12-31",
    "2024-02-30",
    "00000000-0000-0000-0000-000000000000",
    "' OR 1=1 --",
]

BAD_IDS = [
    "not-a-uuid",
    "00000000-0000-0000-0000-00000000000g",
    "%00",
    "a%00b",
    "x" * 2000,
    "%F0%9F%A7%BE",
    "%FF",
    "00000000-0000-0000-0000-000000000000",
    "..%2F..%2Fetc%2Fpasswd",
]

BAD_QUERY_VALUES = [
    "",
    "%00",
    "x" * 5000,
    "-1",
    "0",
    "99999999999999999999999",
    "1e999",
    "9999-12-31",
    "0000-00-00",
    "2024-02-30",
    "true",
    "null",
    "%FF%FE",
    "%F0%9F%A7%BE",
    cursor_of("|" * 50),
    cursor_of(f"9999-12-31T23:59:59-14:00|{uuid.uuid4()}"),
    cursor_of(f"9999-12-31|{uuid.uuid4()}"),
    cursor_of("\x00"),
    "!!!!",
]


def _valid_bodies(tag: str, invoice_id: str) -> dict[tuple[str, str], Any]:
    row = invoice(
        f"S-{tag}",
        reference=f"R-{tag}",
        description="d",
        e_invoice=True,
        fee_agreed=False,
    )
    row["debtor"].update(email="a@b.se", phone="+46 70 123", address="Gatan 1", org_no="5566")
    return {
        ("POST", "/api/v1/auth/login"): {"email": "nobody@example.test", "password": "x" * 12},
        ("POST", "/api/v1/tenants"): {
            "name": "S",
            "slug": f"s-{tag}",
            "country": "SE",
            "currency": "SEK",
            "admin_email": f"s-{tag}@sweep.test",
        },
        ("PATCH", T): {"name": "Swept", "status": "active"},
        ("POST", T + "/api-keys"): {"name": "s", "scopes": ["read"]},
        ("POST", T + "/users"): {"email": f"u-{tag}@sweep.test", "role": "tenant_member"},
        ("POST", T + "/invoices/batch"): {"invoices": [row]},
        ("POST", T + "/invoices/{invoice_id}/pause"): {
            "reason": "r",
            "until": (date.today() + timedelta(days=3)).isoformat(),
        },
        ("POST", T + "/invoices/{invoice_id}/resume"): {"reason": "r"},
        ("POST", T + "/invoices/{invoice_id}/dispute"): {"reason": "r"},
        ("POST", T + "/invoices/{invoice_id}/resolve"): {"reason": "r"},
        ("POST", T + "/payments/batch"): {
            "payments": [
                payment(f"SP-{tag}", 5, invoice_external_id=f"S-{tag}", reference=f"R-{tag}")
            ]
        },
        ("POST", T + "/payments/{payment_id}/match"): {"invoice_id": invoice_id},
    }


def _routes() -> list[tuple[str, str, bool]]:
    """(method, path with {names}, takes a body) of every route but the docs."""
    found = []
    for route in create_app().routes:
        if route.path.startswith("/schema"):
            continue
        for handler in getattr(route, "route_handlers", []):
            for method in handler.http_methods - {"OPTIONS", "HEAD"}:
                path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
                found.append((method, path, "data" in handler.parsed_fn_signature.parameters))
    return found


class _Ids(dict[str, str]):
    """Real ids for the path parameters we know; any other gets one that matches nothing."""

    def __missing__(self, name: str) -> str:
        return "1" if name in ("number", "n", "version") else str(uuid.uuid4())


def _query_parameters() -> dict[str, list[str]]:
    """Path (with {names}) -> the names of its GET query parameters, from the OpenAPI document."""
    schema = create_app().openapi_schema.to_schema()
    found = {}
    for path, item in schema["paths"].items():
        operation = item.get("get")
        if operation:
            names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
            found[path] = names
    return found


def _leaves(value: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*at, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(item, (*at, i))
    else:
        yield at


def _replaced(body: Any, at: tuple[Any, ...], leaf: Any) -> Any:
    copied = copy.deepcopy(body)
    holder = copied
    for step in at[:-1]:
        holder = holder[step]
    holder[at[-1]] = leaf
    return copied


def test_every_route_with_a_body_declares_the_struct_checked_before_it_runs():
    """check_body can only refuse hostile bodies of routes that name their struct."""
    for route in create_app().routes:
        for handler in getattr(route, "route_handlers", []):
            if "data" in handler.parsed_fn_signature.parameters:
                assert handler.opt.get("body") is not None, (route.path, handler.http_methods)


async def test_sweep_never_answers_5xx_and_4xx_writes_nothing(http, boss):
    own = await onboard(http, boss)
    r = await http.post(
        own.path("/invoices/batch"), json={"invoices": [invoice("SWEEP-INV")]}, headers=own.key
    )
    assert r.status_code == 200, r.text
    r = await http.post(
        own.path("/payments/batch"), json={"payments": [payment("SWEEP-PAY", 5)]}, headers=own.key
    )
    assert r.status_code == 200, r.text
    invoice_id = (await http.get(own.path("/invoices"), headers=own.key)).json()["items"][0]["id"]
    payment_id = (await http.get(own.path("/payments"), headers=own.key)).json()["items"][0]["id"]
    key_id = (await http.get(own.path("/api-keys"), headers=boss)).json()["items"][0]["id"]
    ids = {
        "tenant_id": own.id,
        "invoice_id": invoice_id,
        "payment_id": payment_id,
        "key_id": key_id,
    }
    async with pooled():
        await _sweep(http, boss, own, ids)


async def fingerprint(tenant_id: str) -> tuple[int, ...]:
    """The tenant's row counts in one query (tests.support.db's `row_counts` takes nine)."""
    tables = [t._meta.tablename for t in TENANT_OWNED]
    sql = "SELECT " + ", ".join(f"(SELECT count(*) FROM {t} WHERE tenant = {{}})" for t in tables)
    (row,) = await Tenant.raw(sql, *[uuid.UUID(tenant_id)] * len(tables))
    return tuple(row.values())


@contextlib.asynccontextmanager
async def pooled() -> AsyncIterator[None]:
    """A connection pool for the sweep's many row counts (PostgreSQL would otherwise open
    a connection for each)."""
    engine = Tenant._meta.db
    if not isinstance(engine, PostgresEngine):
        yield
        return
    await engine.start_connection_pool(min_size=1, max_size=2)
    try:
        yield
    finally:
        await engine.close_connection_pool()


def _any_valid_body(method: str, path: str, ids: dict[str, str]) -> Any:
    """A valid body: ours, else the authorization matrix's (kept complete for every route)."""
    ours = _valid_bodies(secrets.token_hex(4), ids["invoice_id"]).get((method, path))
    if ours is not None:
        return ours
    from tests.security.test_authorization_matrix import _body

    try:
        return _body(
            method, path, {"invoice_of": {ids["tenant_id"]: ids["invoice_id"]}}, ids["tenant_id"]
        )
    except (KeyError, TypeError):
        return None


# 500s the sweep finds in routes owned elsewhere, reported to their owners: tolerated here
# (with a warning once fixed) so the sweep guards every other route meanwhile.
KNOWN: dict[str, dict[tuple[str, str], str]] = {}


async def _sweep(http: httpx.AsyncClient, boss: dict[str, str], own: Any, ids: dict[str, str]):
    failures: list[tuple[str, str, str]] = []  # (method, path template, what happened)
    counts = await fingerprint(own.id)

    async def send(route: str, method: str, url: str, content: bytes | None = None) -> None:
        nonlocal counts
        headers = {**boss, **JSON} if content is not None else boss
        response = await http.request(method, url, content=content, headers=headers)
        shown = f"{method} {url[:200]} {(content or b'')[:200]!r} -> {response.status_code}"
        if response.status_code >= 500:
            failures.append((method, route, f"{shown} {response.text[:200]}"))
            return
        now = await fingerprint(own.id)
        if response.status_code >= 400:
            if now != counts:
                failures.append((method, route, f"{shown} wrote rows: {counts} -> {now}"))
            try:
                body = response.json()
                assert body["status"] == response.status_code and body["message"]
            except (ValueError, KeyError, AssertionError):
                failures.append((method, route, f"{shown} answered {response.text[:200]!r}"))
        counts = now

    def url_of(path: str, **override: str) -> str:
        return path.format_map(_Ids({**ids, **override}))

    routes = _routes()
    assert any(takes_body for _, _, takes_body in routes)
    for method, path, takes_body in routes:
        for name in re.findall(r"\{(\w+)\}", path):
            for bad in BAD_IDS:
                await send(path, method, url_of(path, **{name: bad}), b"{}" if takes_body else None)
        if not takes_body:
            continue
        url = url_of(path)
        for body in BAD_BODIES:
            await send(path, method, url, body)
        valid = _any_valid_body(method, path, ids)
        if not isinstance(valid, dict):
            continue
        for at in list(_leaves(valid)):
            for leaf in HOSTILE_LEAVES:
                await send(path, method, url, json.dumps(_replaced(valid, at, leaf)).encode())
        for key in list(valid):
            without = {k: v for k, v in valid.items() if k != key}
            await send(path, method, url, json.dumps(without).encode())
        await send(path, method, url, json.dumps({**valid, "unknown\x00": 1}).encode())

    for path, names in _query_parameters().items():
        url = url_of(path)
        for name in names:
            for value in BAD_QUERY_VALUES:
                await send(path, "GET", f"{url}?{name}={value}")
    known = KNOWN.get(os.environ.get("KRAVLAB_TEST_DB", "sqlite"), {})
    unexpected = [shown for method, route, shown in failures if (method, route) not in known]
    assert not unexpected, "\n".join(unexpected[:60]) + f"\n({len(unexpected)} in all)"
    fixed = sorted(set(known) - {(method, route) for method, route, _ in failures})
    if fixed:
        warnings.warn(f"fixed, strike off KNOWN: {fixed}", stacklevel=1)
