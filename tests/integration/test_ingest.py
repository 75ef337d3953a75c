"""Batch ingest: upsert semantics, matching, and bad input that must write nothing."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from tests.support.db import book_counts
from tests.support.world import invoice, payment


async def push(client, tenant, rows, **headers):
    return await client.post(
        tenant.path("/invoices/batch"), json={"invoices": rows}, headers={**tenant.key, **headers}
    )


async def pay(client, tenant, rows):
    return await client.post(
        tenant.path("/payments/batch"), json={"payments": rows}, headers=tenant.key
    )


async def one(client, tenant, external_id):
    items = (
        await client.get(tenant.path(f"/invoices?external_id={external_id}"), headers=tenant.key)
    ).json()["items"]
    assert len(items) == 1
    return (await client.get(tenant.path(f"/invoices/{items[0]['id']}"), headers=tenant.key)).json()


async def test_upsert_counts_created_updated_unchanged(client, tenant):
    rows = [invoice(f"F-{i}", debtor=f"D-{i % 4}", amount=10_000 + i) for i in range(10)]
    assert (await push(client, tenant, rows)).json() == {
        "created": 10,
        "updated": 0,
        "unchanged": 0,
    }
    rows[3]["amount"] = 99_900
    # a debtor's details are not an invoice change; the last row naming a debtor wins
    rows[8]["debtor"]["name"] = "Renamed"
    rows.append(invoice("F-new", debtor="D-9"))
    assert (await push(client, tenant, rows)).json() == {"created": 1, "updated": 1, "unchanged": 9}
    assert (await push(client, tenant, rows)).json() == {
        "created": 0,
        "updated": 0,
        "unchanged": 11,
    }
    assert await book_counts(tenant.id) == (5, 11, 0)
    got = await one(client, tenant, "F-3")
    assert got["amount"] == 99_900 and got["outstanding"] == 99_900 and got["status"] == "open"
    assert (await one(client, tenant, "F-4"))["debtor"]["name"] == "Renamed"


async def test_payments_match_by_invoice_then_reference_else_unmatched(client, tenant):
    rows = [
        invoice("A", amount=50_000, reference="OCR-A"),
        invoice("B", amount=20_000, reference="OCR-B"),
        invoice("C", amount=10_000, reference="SHARED"),
        invoice("D", amount=10_000, reference="SHARED"),
    ]
    await push(client, tenant, rows)
    today = date.today()
    r = await pay(
        client,
        tenant,
        [
            payment("P1", 30_000, invoice_external_id="A", paid=today - timedelta(days=3)),
            payment("P2", 20_000, invoice_external_id="A", paid=today - timedelta(days=1)),
            payment("P3", 25_000, reference="OCR-B"),
            payment("P4", 10_000, reference="SHARED"),  # ambiguous: two invoices carry it
            payment("P5", 10_000, invoice_external_id="nope"),
        ],
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"created": 5, "duplicates": 0, "matched": 3, "unmatched": 2}
    a = await one(client, tenant, "A")
    assert (a["status"], a["outstanding"], a["settled_date"]) == (
        "paid",
        0,
        (today - timedelta(days=1)).isoformat(),
    )
    assert [e["external_id"] for e in a["timeline"] if e["type"] == "payment"] == ["P1", "P2"]
    b = await one(client, tenant, "B")
    assert (b["status"], b["overpaid"], b["paid_amount"]) == ("paid", 5_000, 25_000)
    queue = (await client.get(tenant.path("/payments?unmatched=true"), headers=tenant.key)).json()[
        "items"
    ]
    assert sorted(p["external_id"] for p in queue) == ["P4", "P5"]
    # the same payments again are duplicates, not new money
    again = await pay(
        client,
        tenant,
        [payment("P1", 30_000, invoice_external_id="A"), payment("P6", 1, reference="OCR-B")],
    )
    assert again.json() == {"created": 1, "duplicates": 1, "matched": 1, "unmatched": 0}
    assert (await one(client, tenant, "A"))["paid_amount"] == 50_000


async def test_payment_before_its_invoice_is_matched_when_the_invoice_arrives(client, tenant):
    await pay(client, tenant, [payment("EARLY", 7_000, invoice_external_id="LATE-INV")])
    await push(client, tenant, [invoice("LATE-INV", amount=7_000)])
    got = await one(client, tenant, "LATE-INV")
    assert got["status"] == "paid" and got["timeline"][0]["external_id"] == "EARLY"


async def test_amount_change_reopens_a_settled_invoice(client, tenant):
    await push(client, tenant, [invoice("X", amount=10_000)])
    await pay(client, tenant, [payment("PX", 10_000, invoice_external_id="X")])
    assert (await one(client, tenant, "X"))["status"] == "paid"
    await push(client, tenant, [invoice("X", amount=15_000)])
    got = await one(client, tenant, "X")
    assert (got["status"], got["outstanding"]) == ("open", 5_000)


def _errors(response):
    return {e["path"]: e["message"] for e in response.json()["errors"]}


@pytest.mark.parametrize(
    ("mutate", "path", "fragment"),
    [
        (lambda r: r.update(amount=-5), "invoices[1].amount", ">= 1"),
        (lambda r: r.update(amount=0), "invoices[1].amount", ">= 1"),
        (lambda r: r.update(amount=12.5), "invoices[1].amount", "int"),
        (lambda r: r.update(amount="100"), "invoices[1].amount", "int"),
        (lambda r: r.update(amount=True), "invoices[1].amount", "int"),
        (lambda r: r.update(amount=10**16), "invoices[1].amount", "<="),
        (
            lambda r: r.update(
                due_date=r["issue_date"][:8] + "01", issue_date=r["issue_date"][:8] + "02"
            ),
            "invoices[1].due_date",
            "before issue_date",
        ),
        (lambda r: r.update(due_date="2025-02-30"), "invoices[1].due_date", "date"),
        (lambda r: r.update(issue_date="0001-01-01"), "invoices[1].issue_date", "between"),
        (lambda r: r.update(currency="XYZ"), "invoices[1].currency", "unknown currency"),
        (lambda r: r.update(currency="EUR"), "invoices[1].currency", "tenant's currency SEK"),
        (lambda r: r.update(currency="sek"), "invoices[1].currency", "ISO 4217"),
        (lambda r: r.update(external_id=""), "invoices[1].external_id", "length"),
        (lambda r: r.update(external_id="x" * 129), "invoices[1].external_id", "length"),
        (
            lambda r: r.update(external_id="bad\x00id"),
            "invoices[1].external_id",
            "control characters",
        ),
        (
            lambda r: r["debtor"].update(type="b2x"),
            "invoices[1].debtor.type",
            "expected one of 'b2b', 'b2c'",
        ),
        (lambda r: r["debtor"].update(name="n" * 257), "invoices[1].debtor.name", "length"),
        (lambda r: r["debtor"].pop("name"), "invoices[1].debtor.name", "missing"),
        (lambda r: r.update(unexpected="field"), "invoices[1].unexpected", "unknown field"),
        (lambda r: r.update(e_invoice="yes"), "invoices[1].e_invoice", "bool"),
        (lambda r: r.pop("due_date"), "invoices[1].due_date", "missing"),
        (lambda r: r.update(description="d" * 1001), "invoices[1].description", "length"),
    ],
)
async def test_one_bad_row_rejects_the_batch_and_names_its_field(
    client, tenant, mutate, path, fragment
):
    rows = [invoice(f"OK-{i}") for i in range(3)]
    mutate(rows[1])
    r = await push(client, tenant, rows)
    assert r.status_code == 422, r.text
    errors = _errors(r)
    assert path in errors and fragment in errors[path], errors
    assert await book_counts(tenant.id) == (0, 0, 0)


async def test_every_bad_field_of_every_row_is_listed(client, tenant):
    rows = [invoice(f"R-{i}") for i in range(30)]
    rows[3]["amount"] = -1
    rows[17]["due_date"] = "not a date"
    rows[17]["currency"] = 5
    rows[29] = "not an object"
    r = await push(client, tenant, rows)
    assert r.status_code == 422
    assert set(_errors(r)) == {
        "invoices[3].amount",
        "invoices[17].due_date",
        "invoices[17].currency",
        "invoices[29]",
    }


async def test_business_rule_errors_are_all_listed(client, tenant):
    rows = [
        invoice("DUP"),
        invoice("DUP"),
        invoice("X", currency="NOK"),
        invoice("Y", due_in=-3),
        invoice("DUP"),
    ]
    r = await push(client, tenant, rows)
    assert r.status_code == 422
    assert set(_errors(r)) == {
        "invoices[1].external_id",
        "invoices[2].currency",
        "invoices[3].due_date",
        "invoices[4].external_id",
    }
    assert "duplicate external_id 'DUP'" in _errors(r)["invoices[1].external_id"]
    assert await book_counts(tenant.id) == (0, 0, 0)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b'{"invoices": [', 400),
        (b"not json at all", 400),
        (b"[]", 422),
        (b'{"invoices": []}', 422),
        (b'{"invoices": null}', 422),
        (b'{"invoices": {}}', 422),
        (b'{"rows": []}', 422),
        (b"", 400),
        (b'{"invoices": [{"external_id": "\\ud800"}]}', 400),  # a lone surrogate
    ],
)
async def test_malformed_bodies(client, tenant, body, status):
    r = await client.post(
        tenant.path("/invoices/batch"),
        content=body,
        headers={**tenant.key, "content-type": "application/json"},
    )
    assert r.status_code == status, r.text
    assert r.json()["status"] == status and r.json()["message"]
    assert await book_counts(tenant.id) == (0, 0, 0)


async def test_batch_limits(client, tenant, settings):
    r = await push(client, tenant, [invoice(f"L-{i}", debtor=f"D-{i % 50}") for i in range(10_001)])
    assert r.status_code == 422
    assert any("10000" in m for m in _errors(r).values())
    huge = (
        b'{"invoices": ['
        + b",".join([json.dumps(invoice("big", description="x" * 900)).encode()] * 20_000)
        + b"]}"
    )
    assert len(huge) > settings.max_body_bytes
    r = await client.post(
        tenant.path("/invoices/batch"),
        content=huge,
        headers={**tenant.key, "content-type": "application/json"},
    )
    assert r.status_code == 413
    r = await client.post(
        tenant.path("/invoices/batch"),
        content=huge,
        headers={**tenant.key, "content-type": "application/json", "Idempotency-Key": "big-1"},
    )
    assert r.status_code == 413
    assert await book_counts(tenant.id) == (0, 0, 0)
    r = await push(
        client, tenant, [invoice(f"M-{i}", debtor=f"D-{i % 500}") for i in range(10_000)]
    )
    assert r.json() == {"created": 10_000, "updated": 0, "unchanged": 0}


async def test_unicode_and_long_strings_round_trip(client, tenant):
    name = "Åsa Öberg — 株式会社 🧾 " + "ä" * 200
    row = invoice(
        "Ünïcödé-№1", debtor="Kund-Ø", description="rad 1\nrad 2\t✓" + "é" * 900, reference="R" * 64
    )
    row["debtor"].update(
        name=name[:256],
        email="åsa@exempel.se",
        phone="+46 70-123 45 67",
        address="Storgatan 1\n111 22 Stockholm",
        org_no="556677-8899",
    )
    assert (await push(client, tenant, [row])).json()["created"] == 1
    got = await one(client, tenant, "Ünïcödé-№1")
    assert got["debtor"]["name"] == name[:256] and got["description"] == row["description"]
    assert got["reference"] == "R" * 64


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda p: p.update(amount=0), "payments[0].amount"),
        (lambda p: p.update(currency="EUR"), "payments[0].currency"),
        (lambda p: p.update(paid_date="yesterday"), "payments[0].paid_date"),
        (lambda p: p.pop("external_id"), "payments[0].external_id"),
        (lambda p: p.update(invoice_external_id=7), "payments[0].invoice_external_id"),
    ],
)
async def test_bad_payments_write_nothing(client, tenant, mutate, path):
    rows = [payment("OK-P", 100), payment("BAD-P", 100)]
    rows = [rows[1], rows[0]]
    mutate(rows[0])
    r = await pay(client, tenant, rows)
    assert r.status_code == 422 and path in _errors(r), r.text
    assert await book_counts(tenant.id) == (0, 0, 0)


async def test_an_over_limit_batch_is_refused_before_its_rows_are_looked_at(client, tenant):
    """60 000 rows, every one wrong: one error about the count, not 60 000 about the rows."""
    row = invoice("X", amount=-1)
    body = json.dumps({"invoices": [row] * 60_000}, separators=(",", ":")).encode()
    r = await client.post(
        tenant.path("/invoices/batch"),
        content=body,
        headers={**tenant.key, "content-type": "application/json"},
    )
    assert r.status_code == 422, r.text[:300]
    assert [e["path"] for e in r.json()["errors"]] == ["invoices"]
    assert "10000" in r.json()["errors"][0]["message"]
    assert len(r.content) < 1_000
    assert await book_counts(tenant.id) == (0, 0, 0)


async def test_the_error_list_is_capped_with_a_count_of_the_rest(client, tenant):
    rows = [invoice(f"C-{i}", amount=-1, currency="sek") for i in range(10_000)]
    r = await push(client, tenant, rows)
    assert r.status_code == 422
    errors = r.json()["errors"]
    assert len(errors) == 101
    # row order: the first fifty rows' two errors each, then how many were left out
    assert [e["path"] for e in errors[:4]] == [
        "invoices[0].amount",
        "invoices[0].currency",
        "invoices[1].amount",
        "invoices[1].currency",
    ]
    assert errors[99]["path"] == "invoices[49].currency"
    assert errors[100]["path"] == "$" and "19900 more errors" in errors[100]["message"]
    assert await book_counts(tenant.id) == (0, 0, 0)


async def test_schema_and_rule_errors_come_in_one_answer(client, tenant):
    rows = [invoice(f"S-{i}") for i in range(6)]
    rows[0]["amount"] = -5  # schema
    rows[1]["currency"] = "NOK"  # rule: not the tenant's currency
    rows[2] = invoice("S-2", due_in=-3)  # rule: due before issue
    rows[3]["external_id"] = "S-0"  # rule: a duplicate of row 0
    rows[4]["amount"] = "100"  # schema, and in the same row a rule
    rows[4]["due_date"] = "1969-12-31"
    rows[4]["issue_date"] = "1969-12-01"
    rows[5]["debtor"]["type"] = "b2x"  # schema, in a nested struct
    r = await push(client, tenant, rows)
    assert r.status_code == 422
    assert list(_errors(r)) == [
        "invoices[0].amount",
        "invoices[1].currency",
        "invoices[2].due_date",
        "invoices[3].external_id",
        "invoices[4].amount",
        "invoices[4].issue_date",
        "invoices[4].due_date",
        "invoices[5].debtor.type",
    ]
    assert "tenant's currency SEK" in _errors(r)["invoices[1].currency"]
    assert "before issue_date" in _errors(r)["invoices[2].due_date"]
    assert await book_counts(tenant.id) == (0, 0, 0)


async def test_payment_schema_and_rule_errors_come_in_one_answer(client, tenant):
    rows = [payment(f"Q-{i}", 100) for i in range(4)]
    rows[0]["amount"] = 0  # schema
    rows[1]["currency"] = "EUR"  # rule
    rows[2]["external_id"] = "Q-1"  # rule: duplicate
    rows[3]["paid_date"] = "1900-01-01"  # rule: out of range
    r = await pay(client, tenant, rows)
    assert r.status_code == 422
    assert list(_errors(r)) == [
        "payments[0].amount",
        "payments[1].currency",
        "payments[2].external_id",
        "payments[3].paid_date",
    ]
    assert await book_counts(tenant.id) == (0, 0, 0)


async def test_an_invalid_batch_to_another_tenant_is_a_404_that_names_nothing(
    client, tenant, admin
):
    from tests.support.world import onboard

    other = await onboard(client, admin, currency="NOK")
    rows = [invoice("X", amount=-1), invoice("Y")]
    r = await client.post(
        other.path("/invoices/batch"), json={"invoices": rows}, headers=tenant.key
    )
    assert r.status_code == 404 and "NOK" not in r.text
    assert await book_counts(other.id) == (0, 0, 0)
