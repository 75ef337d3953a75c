"""`Idempotency-Key` on POSTs: replay the first answer, refuse a reused key.

The same key with the same body replays the stored answer (with `Idempotent-Replayed:
true`); with a different body it answers 422; while the first request still runs, 409.
Keys are scoped to the tenant the request is about (or the agency) and kept at least 24
hours. A request that fails with a 5xx releases its key so the client can retry it.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import msgspec
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from backend import bulk
from backend.tables import IdempotencyRecord
from tenants import onboarding
from tenants.clock import aware
from tenants.transactions import write_transaction

HEADER = b"idempotency-key"
MAX_KEY_LENGTH = 255

# Records carry the tenant id as text, not a foreign key: offboarding clears them by owner.
onboarding.UNOWNED_TENANT_ROWS.append(IdempotencyRecord.owner)


def _json(status: int, message: str) -> tuple[int, bytes]:
    return status, msgspec.json.encode({"status": status, "message": message})


async def _send_json(
    send: Send,
    status: int,
    body: bytes,
    replayed: bool = False,
    content_type: str = "application/json",
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if replayed:
        headers.append((b"idempotent-replayed", b"true"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class IdempotencyMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)
    exclude_opt_key = "no_idempotency"

    def __init__(self, ttl_hours: int, lock_seconds: int, max_body_bytes: int) -> None:
        self.max_body_bytes = max_body_bytes
        self.ttl = timedelta(hours=ttl_hours)
        self.lock = timedelta(seconds=lock_seconds)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        key_header = dict(scope["headers"]).get(HEADER)
        method = scope.get("method")
        if method != "POST" or key_header is None:
            await next_app(scope, receive, send)
            return
        key = key_header.decode("latin-1").strip()
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            await _send_json(
                send,
                *_json(400, f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters"),
            )
            return
        body = await _read_body(receive, self.max_body_bytes)
        if body is None:
            await _send_json(send, *_json(413, "request body exceeds the size limit"))
            return
        request_hash = hashlib.sha256(b"POST " + scope["path"].encode() + b"\n" + body).hexdigest()
        principal = scope.get("user")
        tenant_id = scope.get("path_params", {}).get("tenant_id") or getattr(
            principal, "tenant_id", None
        )
        owner = str(tenant_id) if tenant_id else "agency"

        outcome = await self._claim(owner, key, request_hash)
        if outcome is not None:
            await _send_json(send, *outcome[:2], replayed=outcome[2], content_type=outcome[3])
            return

        # The answer is held back until it is stored: a client that retries the moment it
        # has the answer must find it replayable, not still "in flight".
        captured: dict[str, Any] = {"status": 500, "body": [], "type": "application/json"}
        messages: list[Message] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-type":
                        captured["type"] = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                captured["body"].append(message.get("body", b""))
            messages.append(message)

        try:
            await next_app(scope, _replay(body), capture)
        finally:
            await self._finish(owner, key, captured)
        for message in messages:
            await send(message)

    async def _claim(
        self, owner: str, key: str, request_hash: str
    ) -> tuple[int, bytes, bool, str] | None:
        """None when this request may run; else the answer to send instead."""
        now = datetime.now(UTC)
        async with write_transaction():
            where = (IdempotencyRecord.owner == owner) & (IdempotencyRecord.key == key)
            await IdempotencyRecord.delete().where(
                where & (IdempotencyRecord.created_at < now - self.ttl)
            )
            claim_id = uuid4()
            await bulk.upsert(
                IdempotencyRecord,
                ("id", "owner", "key", "request_hash", "in_flight", "created_at"),
                [(claim_id, owner, key, request_hash, True, now)],
                ("owner", "key"),
                (),
            )
            record = await IdempotencyRecord.select().where(where).first()
            assert record is not None
            if str(record["id"]) == str(claim_id):
                return None
            if record["request_hash"] != request_hash:
                return (
                    *_json(422, "Idempotency-Key was already used with a different request"),
                    False,
                    "application/json",
                )
            if record["in_flight"]:
                if now - aware(record["created_at"]) < self.lock:
                    return (
                        *_json(409, "a request with this Idempotency-Key is still in progress"),
                        False,
                        "application/json",
                    )
                # Its process died mid-request: this retry takes the key over.
                await IdempotencyRecord.update({IdempotencyRecord.created_at: now}).where(where)
                return None
            return (
                record["response_status"],
                record["response_body"].encode(),
                True,
                record["response_type"],
            )

    async def _finish(self, owner: str, key: str, captured: dict[str, Any]) -> None:
        where = (IdempotencyRecord.owner == owner) & (IdempotencyRecord.key == key)
        async with write_transaction():
            if captured["status"] >= 500:
                await IdempotencyRecord.delete().where(where)
                return
            await IdempotencyRecord.update(
                {
                    IdempotencyRecord.in_flight: False,
                    IdempotencyRecord.response_status: captured["status"],
                    IdempotencyRecord.response_body: b"".join(captured["body"]).decode(
                        "utf-8", "replace"
                    ),
                    IdempotencyRecord.response_type: captured["type"],
                }
            ).where(where)


async def purge_expired(ttl_hours: int) -> int:
    """Delete records past their keep time; the scheduled `purge_idempotency_keys` job."""
    cutoff = datetime.now(UTC) - timedelta(hours=ttl_hours)
    async with write_transaction():
        expired = await IdempotencyRecord.count().where(IdempotencyRecord.created_at < cutoff)
        await IdempotencyRecord.delete().where(IdempotencyRecord.created_at < cutoff)
    return expired


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None once it passes `limit` (the app's own limit, checked early
    because this middleware reads the body before the app does)."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Any:
    """A `receive` that hands the already-read body to the app."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
