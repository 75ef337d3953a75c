"""Idempotency-Key: replay, refusal of a changed body, 409 while in flight, and keys that
belong to the credential which used them: a replay never skips the route's guard, a refusal
keeps no record, and a secret shown once is never stored."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from backend.tables import IdempotencyRecord
from tests.support.db import book_counts
from tests.support.world import agency_user, api_key, invoice, onboard, tenant_user


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


async def test_invalid_input_keeps_no_record_so_the_fixed_body_can_use_the_key(client, tenant):
    headers = {**tenant.key, "Idempotency-Key": "bad-batch"}
    bad = {"invoices": [invoice("E-1", amount=-1)]}
    first = await client.post(tenant.path("/invoices/batch"), json=bad, headers=headers)
    assert first.status_code == 422
    assert await IdempotencyRecord.count().where(IdempotencyRecord.key == "bad-batch") == 0
    fixed = {"invoices": [invoice("E-1")]}
    r = await client.post(tenant.path("/invoices/batch"), json=fixed, headers=headers)
    assert r.status_code == 200 and r.json()["created"] == 1
    again = await client.post(tenant.path("/invoices/batch"), json=fixed, headers=headers)
    assert again.headers["idempotent-replayed"] == "true"


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


async def _key_actor(client, headers) -> str:
    me = (await client.get("/api/v1/me", headers=headers)).json()
    return f"{me['kind']}:{me['id']}"


async def test_in_flight_key_answers_409_and_a_dead_one_is_taken_over(client, tenant, settings):
    path = tenant.path("/invoices/batch")
    credential = await _key_actor(client, tenant.key)
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
                credential=credential,
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


async def _records(key: str) -> int:
    return await IdempotencyRecord.count().where(IdempotencyRecord.key == key)


async def test_a_replay_never_skips_the_guard_of_another_tenant(client, admin, tenant):
    """Found by a probe: a read-only key of tenant A replayed B's key creation and got
    B's plaintext API key."""
    other = await onboard(client, admin)
    reader = await api_key(client, other, admin, ["read"])
    path, body = tenant.path("/api-keys"), {"name": "erp", "scopes": ["read"]}
    headers = {"Idempotency-Key": "create-key-1"}
    first = await client.post(path, json=body, headers={**admin, **headers})
    assert first.status_code == 201 and first.json()["key"].startswith("kl_")
    stolen = await client.post(path, json=body, headers={**reader, **headers})
    assert stolen.status_code == 404 and "kl_" not in stolen.text
    assert "idempotent-replayed" not in stolen.headers


async def test_a_replay_never_skips_the_role_check(client, admin, tenant):
    """A tenant_member replaying the admin's invitation got the new admin's password."""
    tenant_admin = await tenant_user(client, tenant, admin, "tenant_admin")
    member = await tenant_user(client, tenant, admin, "tenant_member")
    body = {"email": f"new-{uuid4().hex[:6]}@{tenant.slug}.test", "role": "tenant_admin"}
    headers = {"Idempotency-Key": "invite-1"}
    first = await client.post(tenant.path("/users"), json=body, headers={**tenant_admin, **headers})
    assert first.status_code == 201 and first.json()["password"]
    replay = await client.post(tenant.path("/users"), json=body, headers={**member, **headers})
    assert replay.status_code == 403 and first.json()["password"] not in replay.text


async def test_agency_staff_cannot_replay_an_onboarding(client, admin):
    staff = await agency_user(client, "agency_staff")
    slug = f"rep-{uuid4().hex[:8]}"
    body = {
        "name": "Replay AB",
        "slug": slug,
        "country": "SE",
        "currency": "SEK",
        "admin_email": f"admin@{slug}.test",
    }
    headers = {"Idempotency-Key": f"onboard-{slug}"}
    first = await client.post("/api/v1/tenants", json=body, headers={**admin, **headers})
    assert first.status_code == 201
    replay = await client.post("/api/v1/tenants", json=body, headers={**staff, **headers})
    assert replay.status_code == 403 and first.json()["api_key"] not in replay.text


async def test_a_refusal_keeps_no_record_and_cannot_poison_the_owner(client, admin, tenant):
    """A foreign 404 stored under B's tenant made B's next real batch answer 422."""
    intruder = await onboard(client, admin)
    body = {"invoices": [invoice("P-1")]}
    headers = {"Idempotency-Key": "poison-1"}
    refused = await client.post(
        tenant.path("/invoices/batch"), json=body, headers={**intruder.key, **headers}
    )
    assert refused.status_code == 404
    reader = await api_key(client, tenant, admin, ["read"])
    forbidden = await client.post(
        tenant.path("/invoices/batch"), json=body, headers={**reader, **headers}
    )
    assert forbidden.status_code == 403
    assert await _records("poison-1") == 0
    real = await client.post(
        tenant.path("/invoices/batch"), json=body, headers={**tenant.key, **headers}
    )
    assert real.status_code == 200 and real.json()["created"] == 1


async def test_the_same_key_string_of_two_credentials_is_two_keys(client, admin, tenant):
    second = await api_key(client, tenant, admin, ["invoices:write"])
    headers = {"Idempotency-Key": "shared-by-two"}
    a = await client.post(
        tenant.path("/invoices/batch"),
        json={"invoices": [invoice("C-1")]},
        headers={**tenant.key, **headers},
    )
    b = await client.post(
        tenant.path("/invoices/batch"),
        json={"invoices": [invoice("C-2")]},
        headers={**second, **headers},
    )
    assert a.status_code == b.status_code == 200
    assert a.json()["created"] == b.json()["created"] == 1
    assert "idempotent-replayed" not in b.headers


async def test_secrets_shown_once_are_never_stored_or_replayed(client, admin, tenant):
    path, body = tenant.path("/api-keys"), {"name": "once", "scopes": ["read"]}
    headers = {**admin, "Idempotency-Key": "secret-1"}
    first = await client.post(path, json=body, headers=headers)
    secret = first.json()["key"]
    stored = await IdempotencyRecord.select(IdempotencyRecord.response_body).where(
        IdempotencyRecord.key == "secret-1"
    )
    assert len(stored) == 1 and secret not in stored[0]["response_body"]
    again = await client.post(path, json=body, headers=headers)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["key"] is None and again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-redacted"] == "key" and secret not in again.text
    keys = (await client.get(path, headers=admin)).json()["items"]
    assert sum(k["name"] == "once" for k in keys) == 1  # created once, not twice

    onboard_body = {
        "name": "Secret AB",
        "slug": f"sec-{uuid4().hex[:8]}",
        "country": "SE",
        "currency": "SEK",
        "admin_email": f"sec-{uuid4().hex[:8]}@x.test",
    }
    headers = {**admin, "Idempotency-Key": f"onboard-{onboard_body['slug']}"}
    created = (await client.post("/api/v1/tenants", json=onboard_body, headers=headers)).json()
    replay = (await client.post("/api/v1/tenants", json=onboard_body, headers=headers)).json()
    assert replay["api_key"] is None and replay["admin"]["password"] is None
    assert replay["admin"]["email"] == created["admin"]["email"]
    rows = await IdempotencyRecord.select(IdempotencyRecord.response_body).where(
        IdempotencyRecord.key == headers["Idempotency-Key"]
    )
    assert created["api_key"] not in rows[0]["response_body"]
    assert created["admin"]["password"] not in rows[0]["response_body"]
