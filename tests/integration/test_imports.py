"""History imports over HTTP on a live server: a history loads whole, a bad one loads
nothing and names every bad line, hostile uploads get a 4xx, and an ERP push makes an
imported invoice live. Both engines (KRAVLAB_TEST_DB)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from backend.tables import Contact, Debtor, Invoice, Payment
from simulator.history import load_history
from simulator.worlds import generate, write
from tenants.tables import AuditEntry
from tests.support.db import book_counts
from tests.support.server import LiveServer
from tests.support.world import OVERRIDE, api_key, invoice, login, onboard, tenant_user

HISTORY = Path("/work/shared/formats/examples/history")
INVOICES = (
    "invoice_id,debtor_id,debtor_type,issue_date,due_date,amount,currency,e_invoice,disputed,"
    "fee_agreed\n"
    "A-1,C-1,b2c,2025-01-02,2025-02-01,1250.00,SEK,true,false,true\n"
    "A-2,C-1,b2c,2025-02-03,2025-03-05,980.50,SEK,false,true,false\n"
    "A-3,C-2,b2b,2025-02-10,2025-03-12,15000,SEK,false,false,true\n"
)
PAYMENTS = (
    "invoice_id,paid_date,amount\nA-1,2025-02-12,1000.00\nA-1,2025-02-20,250.00\n"
    "A-3,2025-03-01,100.00\n"
)
ACTIONS = (
    "invoice_id,date,action,channel,fee\nA-1,2025-02-09,reminder,letter,60.00\n"
    "A-3,2025-03-20,escalation,,0\n"
)


def files(
    invoices: str | bytes = INVOICES, payments: str | bytes = PAYMENTS, actions: Any = ACTIONS
) -> dict[str, Any]:
    parts: dict[str, Any] = {
        "invoices.csv": ("invoices.csv", invoices, "text/csv"),
        "payments.csv": ("payments.csv", payments, "text/csv"),
    }
    if actions is not None:
        parts["actions.csv"] = ("actions.csv", actions, "text/csv")
    return parts


def directory_files(folder: Path) -> dict[str, Any]:
    return files(
        (folder / "invoices.csv").read_bytes(),
        (folder / "payments.csv").read_bytes(),
        (folder / "actions.csv").read_bytes() if (folder / "actions.csv").exists() else None,
    )


async def upload(client, tenant, parts, headers=None) -> httpx.Response:
    return await client.post(tenant.path("/imports"), files=parts, headers=headers or tenant.key)


async def finished(client, tenant, import_id: str, within: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        r = await client.get(tenant.path(f"/imports/{import_id}"), headers=tenant.key)
        assert r.status_code == 200, r.text
        body = r.json()
        if body["status"] in ("done", "failed"):
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.1)


async def imported(client, tenant, parts) -> dict[str, Any]:
    r = await upload(client, tenant, parts)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued"
    return await finished(client, tenant, r.json()["id"])


async def test_a_history_loads_as_historical_invoices_payments_and_contacts(client, tenant):
    body = await imported(client, tenant, files())
    assert body["status"] == "done", body
    assert (body["invoices"], body["payments"], body["contacts"]) == (3, 3, 2)
    assert body["progress"] == 1 and body["errors"] == [] and body["error_count"] == 0
    assert await book_counts(tenant.id) == (2, 3, 3)

    tid = UUID(tenant.id)
    rows = {
        r["external_id"]: r
        for r in await Invoice.select().where(Invoice.tenant == tid).order_by(Invoice.external_id)
    }
    assert {r["origin"] for r in rows.values()} == {"import"}
    assert rows["A-1"]["amount"] == 125000 and rows["A-1"]["paid_amount"] == 125000
    assert str(rows["A-1"]["settled_date"]) == "2025-02-20"
    assert rows["A-1"]["e_invoice"] and rows["A-1"]["fee_agreed"]
    assert rows["A-2"]["state"] == "disputed" and rows["A-2"]["settled_date"] is None
    assert rows["A-3"]["paid_amount"] == 10000 and rows["A-3"]["settled_date"] is None
    debtors = {d["external_id"]: d for d in await Debtor.select().where(Debtor.tenant == tid)}
    assert {k: (d["name"], d["type"], d["email"]) for k, d in debtors.items()} == {
        "C-1": ("C-1", "b2c", None),
        "C-2": ("C-2", "b2b", None),
    }
    payments = await Payment.select().where(Payment.tenant == tid)
    assert {p["matched_by"] for p in payments} == {"invoice_id"}
    assert sorted(p["amount"] for p in payments) == [10000, 25000, 100000]
    contacts = await Contact.select().where(Contact.tenant == tid).order_by(Contact.date)
    assert [(c["action"], c["channel"], c["fee"]) for c in contacts] == [
        ("reminder", "letter", 6000),
        ("escalation", None, 0),
    ]
    assert {str(c["import_id"]) for c in contacts} == {body["id"]}

    # The book shows them like any invoice; the audit log has the upload and the load.
    listed = await client.get(tenant.path("/invoices?external_id=A-2"), headers=tenant.key)
    assert listed.json()["items"][0]["status"] == "disputed"
    actions = [
        a["action"]
        for a in await AuditEntry.select(AuditEntry.action).where(AuditEntry.tenant == tid)
    ]
    assert "imports.create" in actions and "imports.done" in actions
    listing = await client.get(tenant.path("/imports"), headers=tenant.key)
    assert [i["id"] for i in listing.json()["items"]] == [body["id"]]


async def test_a_generated_world_loads_exactly_what_the_loader_reads(client, tenant, tmp_path):
    generate_dir = tmp_path / "world"
    write(generate("retail-b2c", 3000, seed=5), generate_dir)
    history = load_history(generate_dir)
    body = await imported(client, tenant, directory_files(generate_dir))
    assert body["status"] == "done", body
    assert body["invoices"] == history.size
    assert body["payments"] == len(history.pay_amount)
    assert body["contacts"] == len(history.act_fee)
    tid = UUID(tenant.id)
    rows = await Invoice.select(Invoice.amount, Invoice.paid_amount).where(Invoice.tenant == tid)
    assert sum(r["amount"] for r in rows) == int(history.amount.sum())
    assert sum(r["paid_amount"] for r in rows) == int(history.pay_amount.sum())
    settled = await Invoice.count().where(
        (Invoice.tenant == tid) & Invoice.settled_date.is_not_null()
    )
    assert settled == int((history.settled != 2**31 - 1).sum())


async def _refused(client, tenant, parts) -> list[dict[str, Any]]:
    body = await imported(client, tenant, parts)
    assert body["status"] == "failed", body
    assert body["invoices"] == body["payments"] == body["contacts"] == 0
    assert await book_counts(tenant.id) == (0, 0, 0)
    assert body["error_count"] >= len(body["errors"]) > 0
    return body["errors"]


@pytest.mark.parametrize(
    ("invoices", "payments", "expected"),
    [
        # a payment for an unknown invoice
        (INVOICES, PAYMENTS + "A-9,2025-03-01,5.00\n", ("payments.csv", 5, "invoice_id")),
        # a duplicate invoice id
        (
            INVOICES + "A-2,C-3,b2c,2025-02-03,2025-03-05,1.00,SEK,,,\n",
            PAYMENTS,
            ("invoices.csv", 5, "invoice_id"),
        ),
        # CSV injection in an identifier
        (
            INVOICES
            + '"=HYPERLINK(""http://x.test"")",C-3,b2c,2025-02-03,2025-03-05,1.00,SEK,,,\n',
            PAYMENTS,
            ("invoices.csv", 5, "invoice_id"),
        ),
        (
            INVOICES + "A-4,@SUM(1),b2c,2025-02-03,2025-03-05,1.00,SEK,,,\n",
            PAYMENTS,
            ("invoices.csv", 5, "debtor_id"),
        ),
        # another currency than the tenant's
        (INVOICES.replace("SEK", "EUR"), PAYMENTS, ("invoices.csv", 2, "currency")),
        # one debtor, two types
        (
            INVOICES + "A-4,C-2,b2c,2025-02-03,2025-03-05,1.00,SEK,,,\n",
            PAYMENTS,
            ("invoices.csv", 5, "debtor_type"),
        ),
        # an identifier longer than the book holds
        (
            INVOICES + f"{'X' * 129},C-3,b2c,2025-02-03,2025-03-05,1.00,SEK,,,\n",
            PAYMENTS,
            ("invoices.csv", 5, "invoice_id"),
        ),
        # a date the book does not hold
        (
            INVOICES + "A-4,C-3,b2c,1969-12-31,2025-03-05,1.00,SEK,,,\n",
            PAYMENTS,
            ("invoices.csv", 5, "issue_date"),
        ),
        # an amount past the book's limit
        (
            INVOICES + "A-4,C-3,b2c,2025-02-03,2025-03-05,10000000000000.01,SEK,,,\n",
            PAYMENTS,
            ("invoices.csv", 5, "amount"),
        ),
        # due before issue, a bad date, a bad amount
        (
            INVOICES + "A-4,C-3,b2c,2025-02-03,2025-01-05,1.00,SEK,,,\n",
            PAYMENTS,
            ("invoices.csv", 5, "due_date"),
        ),
        (INVOICES, PAYMENTS + "A-2,2025-13-01,5.00\n", ("payments.csv", 5, "paid_date")),
        (INVOICES, PAYMENTS + "A-2,2025-03-01,5.001\n", ("payments.csv", 5, "amount")),
        # non-UTF-8 bytes
        (
            INVOICES.encode() + "A-4,Cé,b2c,2025-02-03,2025-03-05,1.00,SEK,,,\n".encode("latin-1"),
            PAYMENTS,
            ("invoices.csv", None, None),
        ),
        # a huge line (past the CSV reader's field limit)
        (
            INVOICES + "A-4,C-" + "9" * 200_000 + ",b2c,2025-02-03,2025-03-05,1.00,SEK,,,\n",
            PAYMENTS,
            ("invoices.csv", None, None),
        ),
        # a header without a required column, an empty file
        (INVOICES.replace("debtor_type,", "kind,"), PAYMENTS, ("invoices.csv", 1, "debtor_type")),
        ("", PAYMENTS, ("invoices.csv", 1, None)),
        (
            "invoice_id,debtor_id,debtor_type,issue_date,due_date,amount,currency\n",
            "invoice_id,paid_date,amount\n",
            ("actions.csv", 2, "invoice_id"),
        ),
    ],
)
async def test_a_bad_history_loads_nothing_and_names_its_lines(
    client, admin, invoices, payments, expected
):
    tenant = await onboard(client, admin)
    errors = await _refused(client, tenant, files(invoices, payments))
    file, line, column = expected
    assert any(
        e["file"] == file
        and (line is None or e["line"] == line)
        and (column is None or e["column"] == column)
        for e in errors
    ), errors


async def test_an_empty_history_is_refused(client, tenant):
    header_only = "invoice_id,debtor_id,debtor_type,issue_date,due_date,amount,currency\n"
    errors = await _refused(
        client, tenant, files(header_only, "invoice_id,paid_date,amount\n", None)
    )
    assert errors == [
        {
            "file": "invoices.csv",
            "line": 1,
            "column": "",
            "message": "no invoices",
        }
    ]


async def test_every_bad_line_is_counted_and_the_list_is_capped(client, tenant):
    rows = "".join(f"B-{i},C-1,b2c,2025-02-03,not-a-date,1.00,SEK,,,\n" for i in range(500))
    body = await imported(client, tenant, files(INVOICES + rows, PAYMENTS))
    assert body["status"] == "failed"
    assert body["error_count"] == 500 and len(body["errors"]) == 100
    assert body["errors"][0] == {
        "file": "invoices.csv",
        "line": 5,
        "column": "due_date",
        "message": "not a date (YYYY-MM-DD): 'not-a-date'",
    }
    assert await book_counts(tenant.id) == (0, 0, 0)


async def test_an_invoice_already_in_the_book_refuses_the_import(client, tenant, admin):
    r = await client.post(
        tenant.path("/invoices/batch"),
        json={"invoices": [invoice("A-3", debtor="C-2", debtor_type="b2b")]},
        headers=tenant.key,
    )
    assert r.status_code == 200
    before = await book_counts(tenant.id)
    body = await imported(client, tenant, files())
    assert body["status"] == "failed"
    assert body["errors"] == [
        {
            "file": "invoices.csv",
            "line": 4,
            "column": "invoice_id",
            "message": "'A-3' is already in the book",
        }
    ]
    assert await book_counts(tenant.id) == before
    # A second import of the same history is refused alike, so history is never doubled.
    other = await onboard(client, admin)
    assert (await imported(client, other, files()))["status"] == "done"
    again = await imported(client, other, files())
    assert again["status"] == "failed" and again["error_count"] == 3
    assert await book_counts(other.id) == (2, 3, 3)


async def test_an_erp_push_makes_an_imported_invoice_live(client, tenant):
    assert (await imported(client, tenant, files()))["status"] == "done"
    tid = UUID(tenant.id)
    pushed = invoice("A-3", debtor="C-2", debtor_type="b2b", amount=1_500_000)
    pushed["issue_date"], pushed["due_date"] = "2025-02-10", "2025-03-12"
    r = await client.post(
        tenant.path("/invoices/batch"), json={"invoices": [pushed]}, headers=tenant.key
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"created": 0, "updated": 1, "unchanged": 0}
    origins = {
        row["external_id"]: row["origin"]
        for row in await Invoice.select(Invoice.external_id, Invoice.origin).where(
            Invoice.tenant == tid
        )
    }
    assert origins == {"A-1": "import", "A-2": "import", "A-3": "live"}
    row = (
        await Invoice.select()
        .where((Invoice.tenant == tid) & (Invoice.external_id == "A-3"))
        .first()
    )
    assert row["paid_amount"] == 10000  # its imported payment still counts
    # Pushed again unchanged, it is unchanged (already live).
    again = await client.post(
        tenant.path("/invoices/batch"), json={"invoices": [pushed]}, headers=tenant.key
    )
    assert again.json() == {"created": 0, "updated": 0, "unchanged": 1}
    assert await book_counts(tenant.id) == (2, 3, 3)


async def test_hostile_uploads_get_a_4xx_and_leave_nothing(client, tenant, settings):
    path = tenant.path("/imports")
    cases = [
        # not multipart at all
        (await client.post(path, json={"invoices": []}, headers=tenant.key), 415),
        (
            await client.post(
                path, content=b"x", headers={**tenant.key, "content-type": "multipart/form-data"}
            ),
            415,
        ),
        # a part of another name, a part twice, a missing part
        (await upload(client, tenant, {**files(), "notes.txt": ("n.txt", "x", "text/plain")}), 422),
        (await upload(client, tenant, {"invoices": ("invoices.csv", INVOICES, "text/csv")}), 422),
        (await upload(client, tenant, {"invoices.csv": ("i", INVOICES, "text/csv")}), 422),
        (
            await client.post(
                path,
                content=(
                    b'--b\r\nContent-Disposition: form-data; name="invoices.csv"; filename="i"\r\n\r\nx\r\n'
                    b'--b\r\nContent-Disposition: form-data; name="invoices.csv"; filename="i"\r\n\r\nx\r\n--b--\r\n'
                ),
                headers={**tenant.key, "content-type": "multipart/form-data; boundary=b"},
            ),
            422,
        ),
        # a body that is not multipart under a multipart content type, or cut short
        (
            await client.post(
                path,
                content=b"garbage" * 100,
                headers={**tenant.key, "content-type": "multipart/form-data; boundary=b"},
            ),
            400,
        ),
        (
            await client.post(
                path,
                content=b'--b\r\nContent-Disposition: form-data; name="invoices.csv"\r\n\r\nabc',
                headers={**tenant.key, "content-type": "multipart/form-data; boundary=b"},
            ),
            400,
        ),
    ]
    for response, status in cases:
        assert response.status_code == status, (status, response.text)
        body = response.json()
        assert body["status"] == status and body["message"]
    assert await book_counts(tenant.id) == (0, 0, 0)
    listing = await client.get(path, headers=tenant.key)
    assert listing.json()["items"] == []
    leftovers = (
        list((settings.var_dir / "imports").glob("*"))
        if (settings.var_dir / "imports").exists()
        else []
    )
    assert all(not p.name.startswith(tenant.id) for p in leftovers)


async def test_an_upload_past_the_size_limit_is_413(migrated, admin, tmp_path):
    live = LiveServer(KRAVLAB_MAX_IMPORT_BYTES="2000").start()
    try:
        async with httpx.AsyncClient(base_url=live.url, timeout=60) as http:
            tenant = await onboard(http, admin)
            big = INVOICES + "".join(
                f"Z-{i},C-1,b2c,2025-02-03,2025-03-05,1.00,SEK,,,\n" for i in range(100)
            )
            r = await http.post(tenant.path("/imports"), files=files(big), headers=tenant.key)
            assert r.status_code == 413, r.text
            small = await http.post(tenant.path("/imports"), files=files(), headers=tenant.key)
            assert small.status_code == 202, small.text
            assert (await finished(http, tenant, small.json()["id"]))["status"] == "done"
    finally:
        live.stop()


async def test_the_same_idempotency_key_replays_the_first_import(client, tenant):
    key = {**tenant.key, "Idempotency-Key": f"imp-{secrets.token_hex(6)}"}
    first = await upload(client, tenant, files(), key)
    assert first.status_code == 202, first.text
    second = await upload(client, tenant, files(), key)
    assert second.status_code == 202 and second.json() == first.json()
    assert second.headers.get("idempotent-replayed") == "true"
    other = await upload(client, tenant, files(actions=None), key)
    assert other.status_code == 422, other.text
    await finished(client, tenant, first.json()["id"])
    listing = await client.get(tenant.path("/imports"), headers=tenant.key)
    assert len(listing.json()["items"]) == 1
    assert await book_counts(tenant.id) == (2, 3, 3)


async def test_who_may_import(client, tenant, admin):
    session = await login(client, tenant.admin_email, tenant.admin_password)
    member = await tenant_user(client, tenant, session, "tenant_member")
    reader = await api_key(client, tenant, session, ["read"])
    payer = await api_key(client, tenant, session, ["payments:write"])
    for headers in (member, reader, payer):
        r = await upload(client, tenant, files(), headers)
        assert r.status_code == 403, r.text
    for headers in (member, reader):
        assert (await client.get(tenant.path("/imports"), headers=headers)).status_code == 200
    assert (await upload(client, tenant, files(), session)).status_code == 202
    other = await onboard(client, admin)
    r = await client.post(other.path("/imports"), files=files(), headers=tenant.key)
    assert r.status_code == 404
    mine = (await client.get(tenant.path("/imports"), headers=tenant.key)).json()["items"][0]["id"]
    assert (await client.get(other.path(f"/imports/{mine}"), headers=other.key)).status_code == 404


async def test_listing_pages_newest_first(client, tenant):
    made = []
    for n in range(3):
        rows = INVOICES.replace("A-", f"P{n}-")
        made.append(
            (await imported(client, tenant, files(rows, PAYMENTS.replace("A-", f"P{n}-"), None)))[
                "id"
            ]
        )
    first = (await client.get(tenant.path("/imports?limit=2"), headers=tenant.key)).json()
    assert [i["id"] for i in first["items"]] == made[::-1][:2]
    rest = await client.get(
        tenant.path(f"/imports?limit=2&cursor={first['next_cursor']}"), headers=tenant.key
    )
    assert [i["id"] for i in rest.json()["items"]] == made[:1]
    assert rest.json()["next_cursor"] is None
    bad = await client.get(tenant.path("/imports?cursor=!!!"), headers=tenant.key)
    assert bad.status_code == 422


async def test_the_example_history_loads(client, tenant):
    if not HISTORY.exists():
        pytest.skip("the shared example history is not here")
    body = await imported(client, tenant, directory_files(HISTORY))
    assert body["status"] == "done", body
    assert body["invoices"] == load_history(HISTORY).size
    assert json.loads(json.dumps(body))["error_count"] == 0


def kravlab_import(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", "import", *args],
        env={**os.environ, "COLUMNS": "100"},
        capture_output=True,
        text=True,
        timeout=300,
    )


async def test_kravlab_import_loads_a_directory_like_the_api(client, tenant, tmp_path):
    folder = tmp_path / "history"
    write(generate("wholesale-b2b", 1500, seed=3), folder)
    history = load_history(folder)
    result = kravlab_import("--tenant", tenant.slug, str(folder))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        f"imported {history.size} invoices, {len(history.pay_amount)} payments and "
        f"{len(history.act_fee)} contacts into {tenant.slug}" in result.stdout
    )
    assert (await book_counts(tenant.id))[1:] == (history.size, len(history.pay_amount))
    listed = (await client.get(tenant.path("/imports"), headers=tenant.key)).json()["items"]
    assert [(i["status"], i["invoices"], i["created_by"]) for i in listed] == [
        ("done", history.size, f"cli:{UUID(int=0)}")
    ]
    # The same directory again: every invoice is already in the book, nothing more is loaded.
    again = kravlab_import("--tenant", tenant.slug, str(folder))
    assert again.returncode == 1
    assert f"refused: {history.size} problem(s), nothing was loaded" in again.stdout
    assert "invoices.csv:2 column invoice_id: 'F-0000001' is already in the book" in again.stdout
    assert (await book_counts(tenant.id))[1] == history.size


async def test_kravlab_import_names_bad_lines_and_unknown_tenants(tenant, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "invoices.csv").write_text(INVOICES + "A-4,C-3,b2x,2025-02-03,2025-03-05,1,SEK,,,\n")
    (folder / "payments.csv").write_text(PAYMENTS)
    result = kravlab_import("--tenant", tenant.slug, str(folder))
    assert result.returncode == 1
    assert "invoices.csv:5 column debtor_type: must be b2b or b2c: 'b2x'" in result.stdout
    assert await book_counts(tenant.id) == (0, 0, 0)
    missing = kravlab_import("--tenant", "no-such-tenant", str(folder))
    assert missing.returncode == 1 and "no tenant with the slug no-such-tenant" in missing.stdout
    nowhere = kravlab_import("--tenant", tenant.slug, str(tmp_path / "absent"))
    assert nowhere.returncode == 1 and "not a directory" in nowhere.stdout


async def test_the_dunning_engine_leaves_imported_invoices_alone(client, admin, tenant):
    """A history's unsettled invoices are censored, not unpaid: no step, fee or escalation
    for them, until the ERP pushes one (then it is the book's, and worked)."""
    session = await login(client, tenant.admin_email, tenant.admin_password)
    policy = {
        "name": "Letters",
        "steps": [{"day": 5, "action": "reminder", "channel": "letter"}],
        "escalate_after_days": 60,
    }
    made = await client.post(tenant.path("/policies"), json={"policy": policy}, headers=session)
    activated = await client.post(
        tenant.path(f"/policies/{made.json()['id']}/versions/1/activate"),
        json=OVERRIDE,
        headers=admin,
    )
    assert activated.status_code == 200, activated.text
    assert (await imported(client, tenant, files()))["status"] == "done"
    preview = await client.get(tenant.path("/dunning/preview"), headers=session)
    assert preview.status_code == 200, preview.text
    assert preview.json()["steps"] == [] and preview.json()["escalations"] == []

    pushed = invoice("A-3", debtor="C-2", debtor_type="b2b", amount=1_500_000)
    pushed["issue_date"], pushed["due_date"] = "2025-02-10", "2025-03-12"
    r = await client.post(
        tenant.path("/invoices/batch"), json={"invoices": [pushed]}, headers=tenant.key
    )
    assert r.status_code == 200, r.text
    preview = (await client.get(tenant.path("/dunning/preview"), headers=session)).json()
    worked = {s["external_id"] for s in preview["steps"]} | {
        e["external_id"] for e in preview["escalations"]
    }
    assert worked == {"A-3"}


async def test_an_import_whose_load_died_is_shown_failed_not_running(client, tenant, settings):
    """In-process, a server killed outright takes its load (and its transaction) with it:
    past KRAVLAB_IMPORT_TIMEOUT_SECONDS the import reads as failed, never running forever."""
    from datetime import UTC, datetime, timedelta
    from uuid import uuid4

    from backend.tables import Import

    stale, fresh = uuid4(), uuid4()
    long_ago = datetime.now(UTC) - timedelta(seconds=settings.import_timeout_seconds + 60)
    for import_id, at in ((stale, long_ago), (fresh, datetime.now(UTC))):
        await Import.insert(
            Import(
                id=import_id,
                tenant=UUID(tenant.id),
                status="running",
                stage="writing",
                created_by="test",
                created_at=at,
                started_at=at,
            )
        )
    dead = (await client.get(tenant.path(f"/imports/{stale}"), headers=tenant.key)).json()
    assert dead["status"] == "failed" and dead["finished_at"] is not None
    assert dead["errors"][0]["message"].startswith("the load did not finish within its time")
    alive = (await client.get(tenant.path(f"/imports/{fresh}"), headers=tenant.key)).json()
    assert alive["status"] == "running"
    listed = (await client.get(tenant.path("/imports"), headers=tenant.key)).json()["items"]
    assert {i["id"]: i["status"] for i in listed} == {str(stale): "failed", str(fresh): "running"}
