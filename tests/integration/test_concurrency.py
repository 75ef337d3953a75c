"""Two clients pushing overlapping batches at once, against a server with two worker processes."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.support.db import book_counts
from tests.support.server import LiveServer
from tests.support.world import invoice, payment


@pytest.fixture(scope="module")
def two_workers(migrated):
    live = LiveServer(workers=2).start()
    yield live
    live.stop()


async def test_overlapping_batches_leave_one_row_per_external_id(two_workers, tenant):
    # Batches of 2 000 in four rounds; the two clients share half of each other's ids.
    batches_a = [
        [invoice(f"A{r}-{i}", debtor=f"D-{i % 97}") for i in range(2_000)] for r in range(4)
    ]
    batches_b = [
        [invoice(f"A{r}-{i}", debtor=f"D-{i % 97}") for i in range(1_000, 2_000)]
        + [invoice(f"B{r}-{i}", debtor=f"E-{i % 89}") for i in range(1_000)]
        for r in range(4)
    ]

    async def pusher(batches):
        results = []
        async with httpx.AsyncClient(base_url=two_workers.url, timeout=120) as http:
            for rows in batches:
                r = await http.post(
                    tenant.path("/invoices/batch"), json={"invoices": rows}, headers=tenant.key
                )
                assert r.status_code == 200, r.text
                results.append(r.json())
        return results

    results = await asyncio.gather(pusher(batches_a), pusher(batches_b))
    created = sum(r["created"] for rs in results for r in rs)
    unchanged = sum(r["unchanged"] for rs in results for r in rs)
    assert created == 4 * 3_000  # each distinct external_id created exactly once
    assert unchanged == 4 * 1_000  # the overlap, counted unchanged by whichever came second
    assert all(r["updated"] == 0 for rs in results for r in rs)
    debtors, invoices, _ = await book_counts(tenant.id)
    assert (debtors, invoices) == (97 + 89, 12_000)


async def test_concurrent_payment_batches_never_double_count(two_workers, tenant):
    async with httpx.AsyncClient(base_url=two_workers.url, timeout=120) as http:
        r = await http.post(
            tenant.path("/invoices/batch"),
            json={"invoices": [invoice(f"I-{i}", amount=1_000) for i in range(300)]},
            headers=tenant.key,
        )
        assert r.status_code == 200
        rows = [payment(f"P-{i}", 1_000, invoice_external_id=f"I-{i}") for i in range(300)]

        async def send(part):
            r = await http.post(
                tenant.path("/payments/batch"), json={"payments": part}, headers=tenant.key
            )
            assert r.status_code == 200, r.text
            return r.json()

        results = await asyncio.gather(send(rows[:200]), send(rows[100:]), send(rows))
    assert sum(r["created"] for r in results) == 300
    assert sum(r["duplicates"] for r in results) == 300 + 200 + 200 - 300
    _, _, payments = await book_counts(tenant.id)
    assert payments == 300
    async with httpx.AsyncClient(base_url=two_workers.url, timeout=120) as http:
        paid = (
            await http.get(tenant.path("/invoices?status=paid&limit=1000"), headers=tenant.key)
        ).json()["items"]
    assert len(paid) == 300 and all(i["paid_amount"] == 1_000 for i in paid)
