"""`Idempotency-Key` on POSTs: replay the first answer, refuse a reused key.

The same key with the same body replays the stored answer (with `Idempotent-Replayed:
true`); with a different body it answers 422; while the first request still runs, 409.
Keys belong to the credential that sent them (as Stripe scopes them to the API key) and are
kept at least 24 hours.

A replay is an answer like any other, so it is given only after the route's guard has
admitted the caller, and only to the credential that made the first request: another
credential with the same key string simply runs its own request. A request the service
refuses (401, 403, 404, 429), finds invalid (400, 413, 422) or that fails (5xx) keeps no
record, so nobody can plant an answer under a key another caller will use, and a client can
retry after fixing its access or its body.

Answers that show a secret once (a new API key, a generated password) are stored with those
fields set to null: a replay says the request was done but is not a second way to read the
secret. Routes name their secret fields in `opt={"secrets": ("key", "admin.password")}`; a
replay lists the redacted ones in `Idempotent-Redacted`.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import msgspec
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from backend.tables import IdempotencyRecord
from tenants import bulk, onboarding
from tenants.access import Principal, authorize
from tenants.clock import aware
from tenants.transactions import write_transaction

HEADER = b"idempotency-key"
MAX_KEY_LENGTH = 255
# Refusals and invalid input keep no record, as Stripe saves no result for a request that
# failed validation: they changed nothing, a client that fixes its body retries with the same
# key, and a stored refusal would only let one caller decide what another's retry gets.
NOT_KEPT = frozenset({400, 401, 403, 404, 413, 422, 429})

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
    redacted: str = "",
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if replayed:
        headers.append((b"idempotent-replayed", b"true"))
    if redacted:
        headers.append((b"idempotent-redacted", redacted.encode()))
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
        principal = scope.get("user")
        handler = scope.get("route_handler")
        if not isinstance(principal, Principal) or handler is None or not _admitted(scope):
            # Public routes take no key; a caller the guard refuses gets its refusal from
            # the guard itself, with nothing recorded.
            await next_app(scope, _replay(body), send)
            return
        request_hash = hashlib.sha256(b"POST " + scope["path"].encode() + b"\n" + body).hexdigest()
        tenant_id = scope.get("path_params", {}).get("tenant_id") or principal.tenant_id
        owner = str(tenant_id) if tenant_id else "agency"
        credential = principal.actor
        secrets = tuple(handler.opt.get("secrets", ()))

        outcome = await self._claim(owner, credential, key, request_hash)
        if outcome is not None:
            status, answer, replayed, content_type = outcome
            await _send_json(
                send,
                status,
                answer,
                replayed=replayed,
                content_type=content_type,
                redacted=",".join(secrets) if replayed and status < 300 else "",
            )
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
            await self._finish(credential, key, captured, secrets)
        for message in messages:
            await send(message)

    async def _claim(
        self, owner: str, credential: str, key: str, request_hash: str
    ) -> tuple[int, bytes, bool, str] | None:
        """None when this request may run; else the answer to send instead."""
        now = datetime.now(UTC)
        async with write_transaction():
            where = (IdempotencyRecord.credential == credential) & (IdempotencyRecord.key == key)
            await IdempotencyRecord.delete().where(
                where & (IdempotencyRecord.created_at < now - self.ttl)
            )
            claim_id = uuid4()
            await bulk.upsert(
                IdempotencyRecord,
                ("id", "owner", "credential", "key", "request_hash", "in_flight", "created_at"),
                [(claim_id, owner, credential, key, request_hash, True, now)],
                ("credential", "key"),
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

    async def _finish(
        self, credential: str, key: str, captured: dict[str, Any], secrets: tuple[str, ...]
    ) -> None:
        where = (IdempotencyRecord.credential == credential) & (IdempotencyRecord.key == key)
        status = captured["status"]
        body = b"".join(captured["body"])
        if secrets and status < 300:
            body = _redact(body, secrets)
        async with write_transaction():
            if status >= 500 or status in NOT_KEPT:
                await IdempotencyRecord.delete().where(where)
                return
            await IdempotencyRecord.update(
                {
                    IdempotencyRecord.in_flight: False,
                    IdempotencyRecord.response_status: status,
                    IdempotencyRecord.response_body: body.decode("utf-8", "replace"),
                    IdempotencyRecord.response_type: captured["type"],
                }
            ).where(where)


def _admitted(scope: Scope) -> bool:
    """Whether the route's guard lets this caller in: checked before any record is read,
    so a replay can never answer someone the route itself would refuse."""
    try:
        authorize(ASGIConnection(scope), scope["route_handler"])
    except HTTPException:
        return False
    return True


def _redact(body: bytes, secrets: tuple[str, ...]) -> bytes:
    """The answer with each dotted `secrets` path set to null (shown once, never stored)."""
    try:
        document = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return body
    for path in secrets:
        *parents, leaf = path.split(".")
        node = document
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node:
            node[leaf] = None
    return msgspec.json.encode(document)


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
