"""Idempotency-Key: replay, refusal of a changed body, 409 while in flight, tenant scoping."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from backend.tables import IdempotencyRecord
from tests.support.db import book_counts
from tests.support.world import invoice, onboard


async def test_same_key_same_body_replays_the_first_answer(client, tenant):
    headers = {**tenant.key, "Idempotency-Key": "batch-0001"}
    body = {"invoices": [invoice("I-1"), invoice("I-2")]}
    first = await client.post(tenant.path("/invoices/batch"), json=body, headers=headers)
    assert first.status_code == 200 and first.json()["created"] == 2
    again = await client.post(tenant.path("/invoices/batch"), json=body, headers=headers)
    assert again.status_code == 200 and again.json() == first.json()  # not {"unchanged": 2}
    assert again.headers["idempotent-replayed"] == "true"
    changed = await client.post(
        tenant.path("/invoices/batch"), json={"invoices": [invoice("I-3")]}, headers=headers
    )
    assert changed.status_code == 422 and "different request" in changed.json()["message"]
    assert await book_counts(tenant.id) == (1, 2, 0)


async def test_errors_are_replayed_too(client, tenant):
    headers = {**tenant.key, "Idempotency-Key": "bad-batch"}
    body = {"invoices": [invoice("E-1", amount=-1)]}
    first = await client.post(tenant.path("/invoices/batch"), json=body, headers=headers)
    again = await client.post(tenant.path("/invoices/batch"), json=body, headers=headers)
    assert first.status_code == again.status_code == 422 and first.json() == again.json()


async def test_keys_are_scoped_to_the_tenant(client, admin, tenant):
    other = await onboard(client, admin)
    body = {"invoices": [invoice("S-1")]}
    for t in (tenant, other):
        r = await client.post(
            t.path("/invoices/batch"), json=body, headers={**t.key, "Idempotency-Key": "shared-key"}
        )
        assert (
            r.status_code == 200
            and r.json()["created"] == 1
            and "idempotent-replayed" not in r.headers
        )


def _hash(path: str, body: bytes) -> str:
    return hashlib.sha256(b"POST " + path.encode() + b"\n" + body).hexdigest()


async def test_in_flight_key_answers_409_and_a_dead_one_is_taken_over(client, tenant, settings):
    path = tenant.path("/invoices/batch")
    body = json.dumps({"invoices": [invoice("F-1")]}).encode()
    now = datetime.now(UTC)
    for key, started in (
        ("running", now),
        ("dead", now - timedelta(seconds=settings.idempotency_lock_seconds + 5)),
    ):
        await IdempotencyRecord.insert(
            IdempotencyRecord(
                id=uuid4(),
                owner=tenant.id,
                key=key,
                request_hash=_hash(path, body),
                in_flight=True,
                created_at=started,
            )
        )
    headers = {**tenant.key, "Idempotency-Key": "running", "content-type": "application/json"}
    r = await client.post(path, content=body, headers=headers)
    assert r.status_code == 409
    r = await client.post(path, content=body, headers={**headers, "Idempotency-Key": "dead"})
    assert r.status_code == 200 and r.json()["created"] == 1


async def test_bad_keys_are_refused(client, tenant):
    r = await client.post(
        tenant.path("/invoices/batch"),
        json={"invoices": [invoice("K")]},
        headers={**tenant.key, "Idempotency-Key": "k" * 256},
    )
    assert r.status_code == 400
    assert await book_counts(tenant.id) == (0, 0, 0)


async def test_onboarding_is_idempotent_for_the_agency(client, admin):
    body = {
        "name": "Once AB",
        "slug": f"once-{uuid4().hex[:8]}",
        "country": "SE",
        "currency": "SEK",
        "admin_email": f"once-{uuid4().hex[:8]}@x.test",
    }
    headers = {**admin, "Idempotency-Key": f"onboard-{body['slug']}"}
    first = await client.post("/api/v1/tenants", json=body, headers=headers)
    again = await client.post("/api/v1/tenants", json=body, headers=headers)
    assert (
        first.status_code == again.status_code == 201 and first.json()["id"] == again.json()["id"]
    )


async def test_expired_records_are_purged(tenant, settings):
    from backend.idempotency import purge_expired

    old = datetime.now(UTC) - timedelta(hours=settings.idempotency_ttl_hours + 1)
    for key, at in (("old", old), ("fresh", datetime.now(UTC))):
        await IdempotencyRecord.insert(
            IdempotencyRecord(
                id=uuid4(),
                owner=tenant.id,
                key=key,
                request_hash="x",
                in_flight=False,
                created_at=at,
            )
        )
    assert await purge_expired(settings.idempotency_ttl_hours) >= 1
    left = await IdempotencyRecord.select(IdempotencyRecord.key).where(
        IdempotencyRecord.owner == tenant.id
    )
    assert [r["key"] for r in left] == ["fresh"]
