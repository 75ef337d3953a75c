"""Webhooks: a tenant's subscriptions to its events, signed delivery with backoff, the log.

**Where they may point.** In production only `https://` to a public host: no user info in
the URL, and no IP literal of a loopback, private, link-local or reserved network (the
service must not be turned against its own neighbours). In development, test and demo,
`http://` is allowed to the loopback host only (`127.0.0.1`, `::1`, `localhost`), which is
where tests and a laptop run their receivers. A host name is not resolved when it is
stored: a name that later resolves inside the network is not caught here (egress rules are
the place for that).

**The secret** is the client's (16 to 256 characters); it is stored because it signs every
delivery, and it is never answered back, not even on creation.

**Signature** (Stripe's scheme): `Kravlab-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256
of "<t>.<body>" with the secret>`. A receiver recomputes it over the raw body and refuses a
`t` too far from its clock (replays). `Kravlab-Event-Id` names the event, so a receiver
drops the duplicate that at-least-once delivery may bring.

**Delivery.** Each event is owed to each subscribed webhook (`WebhookDelivery`, written
with the event). `deliver` claims a due delivery (only one worker wins an attempt), POSTs
it with a bounded timeout, never following a redirect (a 3xx is a failed attempt), keeps
at most the first 200 characters of the answer, and logs the attempt. A 2xx delivers; any
other answer or a network error retries after `backoff * 2**(attempt-1)` (capped), until
`max_attempts`, after which the delivery is `failed`. A claim whose worker died opens again
after `CLAIM_TIMEOUT`, so a crash between the receiver's acceptance and our record of it
sends the event again: at least once, never at most once.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import socket
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID, uuid4

import httpx
import msgspec
from litestar.exceptions import ClientException

from backend.events import KINDS
from backend.tables import Webhook, WebhookAttempt, WebhookDelivery
from backend.validation import FieldError, InvalidInput
from tenants import clock
from tenants.pagination import decode_cursor_as, keyset_page
from tenants.scope import TenantScope
from tenants.transactions import write_transaction

MAX_WEBHOOKS = 20  # per tenant: each one multiplies every event's deliveries
MAX_URL_LENGTH = 2048
BACKOFF_SECONDS = 30.0
MAX_BACKOFF = timedelta(hours=6)
MAX_ATTEMPTS = 10  # 30 s doubling, capped: about 9 hours before giving up
CLAIM_TIMEOUT = timedelta(minutes=5)
RESPONSE_PREFIX = 200  # characters of a receiver's answer kept in the log
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
PLAIN_HTTP_ENVIRONMENTS = ("development", "test", "demo")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class TooManyWebhooks(ClientException):
    status_code = 409


def url_problem(url: str, env: str) -> str | None:
    """Why `url` may not receive webhooks in `env`, or None when it may."""
    if len(url) > MAX_URL_LENGTH or _CONTROL.search(url) or " " in url:
        return f"at most {MAX_URL_LENGTH} characters, no spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "not a URL"
    host = (parts.hostname or "").lower()
    if not host:
        return "the URL names no host"
    if parts.username is not None or parts.password is not None:
        return "credentials in the URL are refused: sign with the secret instead"
    if parts.fragment:
        return "a URL with a #fragment is refused"
    if port == 0:
        return "port 0 is not a port"
    if parts.scheme == "http":
        if env in PLAIN_HTTP_ENVIRONMENTS and host in LOOPBACK_HOSTS:
            return None
        return "only https:// (http:// to the loopback host outside production only)"
    if parts.scheme != "https":
        return "only https:// URLs receive webhooks"
    if env == "production" and (host.rstrip(".") == "localhost" or _internal_address(host)):
        return "an internal address (loopback, private, link-local or reserved) is refused"
    return None


def _internal_address(host: str) -> bool:
    """Whether `host` is an address that is not global, in any notation the resolver takes:
    inet_aton reads "127.1", "2130706433", "0x7f000001" and "0177.0.0.1" as 127.0.0.1 too
    (a probe reached a local listener through each)."""
    host = host.rstrip(".")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:
            address = ipaddress.ip_address(socket.inet_aton(host))
        except OSError:
            return False  # a name: not resolved here (see the module's docstring)
    return not address.is_global


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `Kravlab-Signature` header of `body` sent at `timestamp` (unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(secret: str, header: str, body: bytes) -> bool:
    """Whether `header` signs `body` with `secret` (what a receiver does; used by tests)."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        expected = signature(secret, int(fields["t"]), body)
    except (ValueError, KeyError):
        return False
    return hmac.compare_digest(expected, header)


def _out(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "url": row["url"],
        "events": row["events"].split(","),
        "created_at": clock.aware(row["created_at"]),
        "created_by": row["created_by"],
    }


async def create(
    scope: TenantScope, url: str, kinds: Sequence[str], secret: str, env: str
) -> dict[str, Any]:
    """A new subscription; every problem of the URL and kinds answered at once (422)."""
    errors = []
    problem = url_problem(url, env)
    if problem:
        errors.append(FieldError("url", problem))
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        errors.append(FieldError("events", f"one or more of {', '.join(KINDS)}"))
    if errors:
        raise InvalidInput(errors)
    row = {
        "id": uuid4(),
        "url": url,
        "events": ",".join(sorted(set(kinds))),
        "secret": secret,
        "created_at": clock.now(),
        "created_by": scope.principal.actor,
    }
    async with write_transaction():
        await scope.lock("webhooks")
        if await scope.count(Webhook) >= MAX_WEBHOOKS:
            raise TooManyWebhooks(f"a tenant has at most {MAX_WEBHOOKS} webhooks")
        await scope.insert(Webhook, row)
        await scope.audit("webhook.created", "webhook", row["id"], url=url, events=row["events"])
    return _out(row)


async def listing(scope: TenantScope) -> list[dict[str, Any]]:
    rows = await scope.select(Webhook).order_by(Webhook.created_at).order_by(Webhook.id)
    return [_out(r) for r in rows]


async def delete(scope: TenantScope, webhook_id: UUID) -> None:
    """Stop a subscription; its undelivered events and its log go with it."""
    async with write_transaction():
        await scope.get(Webhook, webhook_id, Webhook.id)
        await scope.delete(Webhook).where(Webhook.id == webhook_id)
        await scope.audit("webhook.deleted", "webhook", webhook_id)


async def deliveries(
    scope: TenantScope, webhook_id: UUID, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """A webhook's deliveries, oldest first, each with its attempts (the delivery log)."""
    await scope.get(Webhook, webhook_id, Webhook.id)
    query = (
        scope.select(
            WebhookDelivery,
            WebhookDelivery.id,
            WebhookDelivery.event,
            WebhookDelivery.event.kind.as_alias("kind"),
            WebhookDelivery.status,
            WebhookDelivery.attempts,
            WebhookDelivery.next_attempt_at,
            WebhookDelivery.created_at,
            WebhookDelivery.delivered_at,
        )
        .where(WebhookDelivery.webhook == webhook_id)
        .order_by(WebhookDelivery.created_at)
        .order_by(WebhookDelivery.id)
    )
    if cursor is not None:
        at, after = decode_cursor_as(cursor, _moment, UUID)
        query = query.where(
            (WebhookDelivery.created_at > at)
            | ((WebhookDelivery.created_at == at) & (WebhookDelivery.id > after))
        )
    rows, next_cursor = await keyset_page(
        query, limit, lambda r: (clock.aware(r["created_at"]).isoformat(), r["id"])
    )
    log: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if rows:
        attempts = await scope.select(
            WebhookAttempt,
            WebhookAttempt.delivery,
            WebhookAttempt.attempt,
            WebhookAttempt.status_code,
            WebhookAttempt.error,
            WebhookAttempt.response,
            WebhookAttempt.at,
        ).where(WebhookAttempt.delivery.is_in([r["id"] for r in rows]))
        for a in sorted(attempts, key=lambda a: a["attempt"]):
            log[str(a["delivery"])].append(
                {
                    "attempt": a["attempt"],
                    "status_code": a["status_code"],
                    "error": a["error"],
                    "response": a["response"],
                    "at": _aware(a["at"]),
                }
            )
    items = [
        {
            "id": r["id"],
            "event_id": r["event"],
            "kind": r["kind"],
            "status": r["status"],
            "attempts": r["attempts"],
            "next_attempt_at": _aware(r["next_attempt_at"])
            if r["status"] in ("pending", "retrying")
            else None,
            "created_at": _aware(r["created_at"]),
            "delivered_at": _aware(r["delivered_at"]),
            "log": log[str(r["id"])],
        }
        for r in rows
    ]
    return items, next_cursor


def _moment(text: str) -> datetime:
    return clock.aware(datetime.fromisoformat(text))


def _aware(value: Any) -> Any:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return clock.aware(value) if isinstance(value, datetime) else value


def _backoff(attempts: int, base: float) -> timedelta:
    return min(MAX_BACKOFF, timedelta(seconds=base * 2 ** max(0, attempts - 1)))


async def deliver(
    scope: TenantScope,
    *,
    request_timeout: float,
    backoff: float = BACKOFF_SECONDS,
    max_attempts: int = MAX_ATTEMPTS,
) -> dict[str, int]:
    """One attempt for each of this tenant's deliveries that is due; counts the outcomes.

    `backoff` is the first retry's delay in seconds (tests pass 0 to retry at once).
    """
    now = clock.now()
    due = WebhookDelivery.next_attempt_at.is_null() | (WebhookDelivery.next_attempt_at <= now)
    query = scope.select(
        WebhookDelivery,
        WebhookDelivery.id,
        WebhookDelivery.status,
        WebhookDelivery.attempts,
        WebhookDelivery.event,
        WebhookDelivery.webhook.url.as_alias("url"),
        WebhookDelivery.webhook.secret.as_alias("secret"),
        WebhookDelivery.event.kind.as_alias("kind"),
        WebhookDelivery.event.invoice.as_alias("invoice"),
        WebhookDelivery.event.data.as_alias("data"),
        WebhookDelivery.event.at.as_alias("at"),
    )
    waiting = await query.where(
        (WebhookDelivery.status.is_in(["pending", "retrying"]) & due)
        | ((WebhookDelivery.status == "sending") & (WebhookDelivery.next_attempt_at <= now))
    ).order_by(WebhookDelivery.created_at)
    counts: dict[str, int] = defaultdict(int)
    if not waiting:
        return {}
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(request_timeout), follow_redirects=False, trust_env=False
    ) as client:
        for delivery in waiting:
            if not await _claim(scope, delivery, now):
                counts["taken_by_another_worker"] += 1
                continue
            body = _body(scope.tenant_id, delivery)
            status, error, response = await _post(client, delivery, body)
            outcome = await _settle(scope, delivery, status, error, response, backoff, max_attempts)
            counts[outcome] += 1
    return dict(counts)


def _body(tenant_id: UUID, event: Mapping[str, Any]) -> bytes:
    """The event as the receiver gets it (a delivery row joined to its event)."""
    data = event["data"]
    return msgspec.json.encode(
        {
            "id": str(event["event"]),
            "tenant_id": str(tenant_id),
            "kind": event["kind"],
            "invoice_id": str(event["invoice"]) if event["invoice"] else None,
            "data": msgspec.json.decode(data) if isinstance(data, str) else data,
            "at": _aware(event["at"]).isoformat(),
        }
    )


async def _claim(scope: TenantScope, delivery: Mapping[str, Any], now: datetime) -> bool:
    async with write_transaction():
        claimed = (
            await scope.update(
                WebhookDelivery,
                {
                    WebhookDelivery.status: "sending",
                    WebhookDelivery.attempts: WebhookDelivery.attempts + 1,
                    WebhookDelivery.next_attempt_at: now + CLAIM_TIMEOUT,
                },
            )
            .where(
                (WebhookDelivery.id == delivery["id"])
                & (WebhookDelivery.status == delivery["status"])
                & (WebhookDelivery.attempts == delivery["attempts"])
            )
            .returning(WebhookDelivery.id)
        )
    return bool(claimed)


async def _post(
    client: httpx.AsyncClient, delivery: Mapping[str, Any], body: bytes
) -> tuple[int | None, str | None, str | None]:
    """(status code, error, the answer's first characters) of one attempt."""
    event_id = msgspec.json.decode(body)["id"]
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "kravlab-webhooks/1",
        "Kravlab-Signature": signature(delivery["secret"], int(time.time()), body),
        "Kravlab-Event-Id": event_id,
        "Kravlab-Delivery-Id": str(delivery["id"]),
    }
    try:
        async with client.stream("POST", delivery["url"], content=body, headers=headers) as r:
            prefix = b""
            async for chunk in r.aiter_raw():
                prefix += chunk
                if len(prefix) >= RESPONSE_PREFIX * 4:
                    break
            text = _CONTROL.sub(" ", prefix.decode("utf-8", "replace"))[:RESPONSE_PREFIX]
            if r.is_redirect:
                return r.status_code, "a redirect is not followed", text
            if r.is_success:
                return r.status_code, None, text
            return r.status_code, f"answered {r.status_code}", text
    except httpx.TimeoutException:
        return None, "timed out", None
    except httpx.HTTPError as exc:
        return None, _CONTROL.sub(" ", f"{type(exc).__name__}: {exc}")[:500], None


async def _settle(
    scope: TenantScope,
    delivery: Mapping[str, Any],
    status: int | None,
    error: str | None,
    response: str | None,
    backoff: float,
    max_attempts: int,
) -> str:
    now = clock.now()
    attempt = delivery["attempts"] + 1
    if error is None:
        outcome, values = "delivered", {"status": "delivered", "delivered_at": now}
    elif attempt < max_attempts:
        retry_at = now + _backoff(attempt, backoff)
        outcome, values = "retrying", {"status": "retrying", "next_attempt_at": retry_at}
    else:
        outcome, values = "failed", {"status": "failed"}
    async with write_transaction():
        await scope.insert(
            WebhookAttempt,
            {
                "id": uuid4(),
                "delivery": delivery["id"],
                "attempt": attempt,
                "status_code": status,
                "error": error,
                "response": response,
                "at": now,
            },
        )
        await scope.update(
            WebhookDelivery, {getattr(WebhookDelivery, k): v for k, v in values.items()}
        ).where(WebhookDelivery.id == delivery["id"])
    return outcome
