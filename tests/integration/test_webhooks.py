"""The event log and webhooks against real receivers (http.server in a thread): signed
deliveries, retries with backoff, giving up, the delivery log, isolation and hostile input."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from uuid import UUID

import httpx
import pytest

from backend import webhooks
from backend.events import KINDS
from tenants.access import ROLE_GRANTS, Principal
from tenants.scope import TenantScope
from tests.channels.servers import free_port
from tests.support.server import LiveServer
from tests.support.world import OVERRIDE, invoice, login, onboard

SECRET = "whsec_" + "k" * 26
SYSTEM = Principal("system", UUID(int=0), None, "agency_admin", grants=ROLE_GRANTS["agency_admin"])


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers each POST with the next of `answers` (the last one repeats)."""

    answers: list[int]
    hits: list[Hit] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@pytest.fixture
def receiver() -> Iterator[Any]:
    servers = []

    def start(*answers: int) -> Receiver:
        state = Receiver(list(answers))

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                state.hits.append(Hit(self.path, dict(self.headers.items()), body))
                code = state.answers[min(len(state.hits), len(state.answers)) - 1]
                self.send_response(code)
                if 300 <= code < 400:
                    self.send_header("Location", f"http://127.0.0.1:{state.port}/elsewhere")
                text = b"x" * 5000 if code >= 500 else b"ok"
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        state.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return state

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


async def _tenant(client, admin):
    tenant = await onboard(client, admin)
    session = await login(client, tenant.admin_email, tenant.admin_password)
    return tenant, session


async def _invoice(client, tenant, external_id="INV-1", **extra) -> str:
    rows = [invoice(external_id, debtor=f"D-{external_id}", **extra)]
    r = await client.post(
        tenant.path("/invoices/batch"), json={"invoices": rows}, headers=tenant.key
    )
    assert r.status_code == 200, r.text
    found = await client.get(
        tenant.path(f"/invoices?external_id={external_id}"), headers=tenant.key
    )
    items = [i for i in found.json()["items"] if i["external_id"] == external_id]
    return items[0]["id"]


async def _hook(client, tenant, session, url, kinds=("invoice_paused",)) -> str:
    body = {"url": url, "events": list(kinds), "secret": SECRET}
    r = await client.post(tenant.path("/webhooks"), json=body, headers=session)
    assert r.status_code == 201, r.text
    assert SECRET not in r.text
    return r.json()["id"]


async def _deliver(tenant, **options) -> dict[str, int]:
    scope = await TenantScope.open(UUID(tenant.id), SYSTEM)
    return await webhooks.deliver(scope, request_timeout=5, **options)


async def _deliveries(client, tenant, session, hook_id) -> list[dict[str, Any]]:
    r = await client.get(tenant.path(f"/webhooks/{hook_id}/deliveries"), headers=session)
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def test_state_changes_and_activation_are_events_listed_by_kind_and_page(client, admin):
    tenant, session = await _tenant(client, admin)
    policy = {"name": "P", "steps": [{"day": 5, "action": "reminder", "channel": "email"}]}
    made = await client.post(tenant.path("/policies"), json={"policy": policy}, headers=session)
    r = await client.post(
        tenant.path(f"/policies/{made.json()['id']}/versions/1/activate"),
        json=OVERRIDE,
        headers=admin,
    )
    assert r.status_code == 200, r.text
    invoice_id = await _invoice(client, tenant)
    until = (date.today() + timedelta(days=3)).isoformat()
    for kind, body in (
        ("pause", {"reason": "called", "until": until}),
        ("resume", {"reason": "r"}),
        ("dispute", {"reason": "d"}),
        ("resolve", {"reason": "s"}),
    ):
        r = await client.post(
            tenant.path(f"/invoices/{invoice_id}/{kind}"), json=body, headers=session
        )
        assert r.status_code == 200, r.text
    r = await client.get(tenant.path("/events"), headers=tenant.key)
    assert r.status_code == 200, r.text
    events = r.json()["items"]
    assert [e["kind"] for e in events] == [
        "policy_activated",
        "invoice_paused",
        "invoice_resumed",
        "invoice_disputed",
        "invoice_resolved",
    ]
    assert events[0]["data"]["policy_id"] == made.json()["id"] and events[0]["invoice_id"] is None
    assert events[1]["invoice_id"] == invoice_id
    assert events[1]["data"] == {"reason": "called", "until": until}
    only = await client.get(tenant.path("/events?kind=invoice_disputed"), headers=tenant.key)
    assert [e["kind"] for e in only.json()["items"]] == ["invoice_disputed"]
    seen, cursor = [], None
    while True:
        query = "/events?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(tenant.path(query), headers=tenant.key)).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [e["id"] for e in events]
    for bad in ("?kind=nope", "?cursor=%00%01", "?limit=0", "?limit=100000"):
        r = await client.get(tenant.path("/events" + bad), headers=tenant.key)
        assert r.status_code in (400, 422), (bad, r.text)


async def test_a_dunning_run_records_step_fee_letter_and_failure_events(client, admin):
    policy = {
        "name": "Letter",
        "segment": {"debtor_type": "b2c"},
        "steps": [{"day": 1, "action": "reminder", "channel": "letter", "fee": 6000}],
    }
    kinds_of = {}
    for with_profile in (True, False):
        tenant, session = await _tenant(client, admin)
        if with_profile:
            profile = {"bankgiro": "123-4567", "dispute_email": "tvist@kund.test"}
            r = await client.put(tenant.path("/profile"), json=profile, headers=session)
            assert r.status_code == 200, r.text
        made = await client.post(tenant.path("/policies"), json={"policy": policy}, headers=session)
        r = await client.post(
            tenant.path(f"/policies/{made.json()['id']}/versions/1/activate"),
            json=OVERRIDE,
            headers=admin,
        )
        assert r.status_code == 200, r.text
        issue = date.today() - timedelta(days=40)
        rows = [
            invoice(f"L{i}", debtor=f"D{i}", issue=issue, due_in=30, fee_agreed=True)
            for i in range(3)
        ]
        for row in rows:
            row["debtor"]["address"] = "Storgatan 1\n111 22 Stockholm"
        r = await client.post(
            tenant.path("/invoices/batch"), json={"invoices": rows}, headers=tenant.key
        )
        assert r.status_code == 200, r.text
        r = await client.post(tenant.path("/dunning/run"), json={}, headers=session)
        assert r.status_code == 200, r.text
        # The letters are made by their own job, queued by the run: wait for its events.
        settled = "letter_created" if with_profile else "contact_failed"
        for _ in range(400):
            events = (await client.get(tenant.path("/events?limit=100"), headers=tenant.key)).json()
            if [e["kind"] for e in events["items"]].count(settled) >= 3:
                break
            await asyncio.sleep(0.05)
        kinds = [e["kind"] for e in events["items"]]
        kinds_of[with_profile] = sorted(kinds)
        taken = [e for e in events["items"] if e["kind"] == "step_taken"]
        fees = [e for e in events["items"] if e["kind"] == "fee_charged"]
        assert len(taken) == 3 and len(fees) == 3
        assert {e["data"]["fee"] for e in fees} == {6000}
        assert {e["data"]["step_id"] for e in fees} == {e["data"]["step_id"] for e in taken}
        if with_profile:
            letters = [e for e in events["items"] if e["kind"] == "letter_created"]
            assert {e["invoice_id"] for e in letters} == {e["invoice_id"] for e in taken}
            for e in letters:
                pdf = await client.get(
                    tenant.path(
                        f"/invoices/{e['invoice_id']}/letters/{e['data']['letter_id']}.pdf"
                    ),
                    headers=tenant.key,
                )
                assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        else:
            failed = [e for e in events["items"] if e["kind"] == "contact_failed"]
            assert len(failed) == 3 and {e["data"]["fee_returned"] for e in failed} == {6000}
        # a second run the same day records nothing more, so no event either
        r = await client.post(tenant.path("/dunning/run"), json={}, headers=session)
        again = (await client.get(tenant.path("/events?limit=100"), headers=tenant.key)).json()
        assert len(again["items"]) == len(events["items"])
    assert kinds_of[True].count("letter_created") == 3 and "contact_failed" not in kinds_of[True]
    assert "letter_created" not in kinds_of[False]


async def test_an_accepting_receiver_gets_one_signed_delivery(client, admin, receiver):
    tenant, session = await _tenant(client, admin)
    hook = receiver(200)
    hook_id = await _hook(client, tenant, session, hook.url)
    other_kind = await _hook(client, tenant, session, hook.url, kinds=("step_taken",))
    invoice_id = await _invoice(client, tenant)
    r = await client.post(
        tenant.path(f"/invoices/{invoice_id}/pause"), json={"reason": "x"}, headers=session
    )
    assert r.status_code == 200, r.text
    assert await _deliver(tenant, backoff=0) == {"delivered": 1}
    assert await _deliver(tenant, backoff=0) == {}
    [hit] = hook.hits
    event = (await client.get(tenant.path("/events"), headers=tenant.key)).json()["items"][0]
    body = json.loads(hit.body)
    assert body["id"] == event["id"] == hit.headers["Kravlab-Event-Id"]
    assert body["kind"] == "invoice_paused" and body["invoice_id"] == invoice_id
    assert body["tenant_id"] == tenant.id and body["data"]["reason"] == "x"
    signature = hit.headers["Kravlab-Signature"]
    assert signature.startswith("t=") and ",v1=" in signature
    assert webhooks.verify(SECRET, signature, hit.body)
    assert not webhooks.verify("another secret of length", signature, hit.body)
    assert not webhooks.verify(SECRET, signature, hit.body + b" ")
    [delivery] = await _deliveries(client, tenant, session, hook_id)
    assert delivery["status"] == "delivered" and delivery["attempts"] == 1
    assert delivery["event_id"] == event["id"] and delivery["kind"] == "invoice_paused"
    assert [(a["attempt"], a["status_code"], a["error"]) for a in delivery["log"]] == [
        (1, 200, None)
    ]
    assert delivery["log"][0]["response"] == "ok"
    assert await _deliveries(client, tenant, session, other_kind) == []
    listed = await client.get(tenant.path("/webhooks"), headers=session)
    assert {h["id"] for h in listed.json()} == {hook_id, other_kind}
    assert SECRET not in listed.text


async def test_a_receiver_failing_twice_gets_it_on_the_third_attempt(client, admin, receiver):
    tenant, session = await _tenant(client, admin)
    hook = receiver(500, 502, 200)
    hook_id = await _hook(client, tenant, session, hook.url)
    invoice_id = await _invoice(client, tenant)
    await client.post(
        tenant.path(f"/invoices/{invoice_id}/pause"), json={"reason": "x"}, headers=session
    )
    outcomes = [await _deliver(tenant, backoff=0) for _ in range(4)]
    assert outcomes == [{"retrying": 1}, {"retrying": 1}, {"delivered": 1}, {}]
    assert len(hook.hits) == 3
    assert len({h.headers["Kravlab-Event-Id"] for h in hook.hits}) == 1  # the receiver's dedupe key
    [delivery] = await _deliveries(client, tenant, session, hook_id)
    assert delivery["status"] == "delivered" and delivery["attempts"] == 3
    log = delivery["log"]
    assert [(a["attempt"], a["status_code"]) for a in log] == [(1, 500), (2, 502), (3, 200)]
    assert log[0]["error"] == "answered 500" and log[2]["error"] is None
    assert len(log[0]["response"]) == webhooks.RESPONSE_PREFIX  # 5000 bytes answered, 200 kept


async def test_a_receiver_that_never_accepts_is_given_up_after_max_attempts(
    client, admin, receiver
):
    tenant, session = await _tenant(client, admin)
    hook = receiver(503)
    redirecting = receiver(302)
    hook_id = await _hook(client, tenant, session, hook.url)
    redirect_id = await _hook(client, tenant, session, redirecting.url)
    invoice_id = await _invoice(client, tenant)
    await client.post(
        tenant.path(f"/invoices/{invoice_id}/pause"), json={"reason": "x"}, headers=session
    )
    outcomes = [await _deliver(tenant, backoff=0, max_attempts=3) for _ in range(4)]
    assert outcomes == [{"retrying": 2}, {"retrying": 2}, {"failed": 2}, {}]
    assert len(hook.hits) == 3
    assert [h.path for h in redirecting.hits] == ["/hook"] * 3  # the redirect is never followed
    [delivery] = await _deliveries(client, tenant, session, hook_id)
    assert delivery["status"] == "failed" and delivery["attempts"] == 3
    assert delivery["next_attempt_at"] is None
    assert [a["status_code"] for a in delivery["log"]] == [503, 503, 503]
    [redirected] = await _deliveries(client, tenant, session, redirect_id)
    assert redirected["status"] == "failed"
    assert {a["error"] for a in redirected["log"]} == {"a redirect is not followed"}


async def test_a_failed_attempt_waits_for_its_backoff(client, admin, receiver):
    tenant, session = await _tenant(client, admin)
    hook = receiver(500, 200)
    hook_id = await _hook(client, tenant, session, hook.url)
    invoice_id = await _invoice(client, tenant)
    await client.post(
        tenant.path(f"/invoices/{invoice_id}/pause"), json={"reason": "x"}, headers=session
    )
    assert await _deliver(tenant, backoff=3600) == {"retrying": 1}
    assert await _deliver(tenant, backoff=3600) == {}  # not due for an hour
    assert len(hook.hits) == 1
    [delivery] = await _deliveries(client, tenant, session, hook_id)
    assert delivery["status"] == "retrying" and delivery["next_attempt_at"] is not None


async def test_a_dead_receiver_is_a_logged_network_error(client, admin, receiver):
    tenant, session = await _tenant(client, admin)
    gone = receiver(200)
    gone_id = await _hook(client, tenant, session, gone.url)
    invoice_id = await _invoice(client, tenant)
    pause = tenant.path(f"/invoices/{invoice_id}/pause")
    await client.post(pause, json={"reason": "x"}, headers=session)
    r = await client.delete(tenant.path(f"/webhooks/{gone_id}"), headers=session)
    assert r.status_code == 204, r.text
    assert await _deliver(tenant, backoff=0) == {}
    assert gone.hits == []  # deleted before its delivery: nothing sent, nothing left owed
    dead = await _hook(client, tenant, session, f"http://127.0.0.1:{free_port()}/hook")
    await client.post(pause, json={"reason": "y"}, headers=session)
    assert await _deliver(tenant, backoff=0) == {"retrying": 1}
    [delivery] = await _deliveries(client, tenant, session, dead)
    [attempt] = delivery["log"]
    assert attempt["status_code"] is None and attempt["error"]


async def test_the_periodic_job_delivers_by_itself(migrated, admin, receiver):
    live = LiveServer(KRAVLAB_WEBHOOK_INTERVAL_SECONDS="0.2").start()
    try:
        async with httpx.AsyncClient(base_url=live.url, timeout=60) as http:
            tenant, session = await _tenant(http, admin)
            hook = receiver(200)
            await _hook(http, tenant, session, hook.url)
            invoice_id = await _invoice(http, tenant)
            r = await http.post(
                tenant.path(f"/invoices/{invoice_id}/pause"), json={"reason": "x"}, headers=session
            )
            assert r.status_code == 200, r.text
            for _ in range(300):
                if hook.hits:
                    break
                await asyncio.sleep(0.1)
            assert len(hook.hits) == 1
            assert webhooks.verify(
                SECRET, hook.hits[0].headers["Kravlab-Signature"], hook.hits[0].body
            )
    finally:
        live.stop()


async def test_a_tenant_never_sees_another_tenants_events_or_webhooks(client, admin, receiver):
    own, own_session = await _tenant(client, admin)
    other, other_session = await _tenant(client, admin)
    hook = receiver(200)
    other_hook = await _hook(client, other, other_session, hook.url)
    marker = f"LEAK{secrets.token_hex(4)}"
    other_invoice = await _invoice(client, other, external_id=marker)
    await client.post(
        other.path(f"/invoices/{other_invoice}/pause"),
        json={"reason": marker},
        headers=other_session,
    )
    for url, method in (
        (own.path(f"/webhooks/{other_hook}/deliveries"), "GET"),
        (own.path(f"/webhooks/{other_hook}"), "DELETE"),
        (other.path(f"/webhooks/{other_hook}/deliveries"), "GET"),
        (other.path("/webhooks"), "GET"),
        (other.path("/events"), "GET"),
    ):
        r = await client.request(method, url, headers=own_session)
        assert r.status_code == 404, (method, url, r.text)
        assert marker not in r.text
    r = await client.get(own.path("/events?limit=1000"), headers=own_session)
    assert r.status_code == 200 and r.json()["items"] == []
    r = await client.get(own.path("/webhooks"), headers=own_session)
    assert r.json() == []
    assert await _deliver(own, backoff=0) == {}
    assert hook.hits == []
    still = await client.get(
        other.path(f"/webhooks/{other_hook}/deliveries"), headers=other_session
    )
    assert still.status_code == 200 and len(still.json()["items"]) == 1


HOSTILE_URLS = [
    "",
    "file:///etc/passwd",
    "ftp://127.0.0.1/hook",
    "javascript:alert(1)",
    "gopher://127.0.0.1:70/",
    "http://example.com/hook",  # plain http beyond the loopback
    "http://10.0.0.1/hook",
    "https://",
    "https://user:pw@example.com/hook",
    "https://example.com/hook#frag",
    "https://exa mple.com/",
    "https://example.com/\nX-Injected: 1",
    "https://example.com:99999/",
    "http://127.0.0.1:0/",
    "https://example.com/" + "a" * 3000,
    "//example.com/hook",
    "https:example.com",
]


@pytest.mark.parametrize("url", HOSTILE_URLS)
async def test_hostile_urls_are_refused(client, admin, url):
    tenant, session = await _shared(client, admin)
    body = {"url": url, "events": ["step_taken"], "secret": SECRET}
    r = await client.post(tenant.path("/webhooks"), json=body, headers=session)
    assert r.status_code == 422, (url, r.text)


@pytest.mark.parametrize(
    "change",
    [
        {"secret": "s" * 15},
        {"secret": "s" * 100_000},
        {"secret": "s" * 20 + "\x00"},
        {"secret": "bad secret with spaces"},
        {"secret": None},
        {"events": []},
        {"events": ["nope"]},
        {"events": ["step_taken", "DROP TABLE events"]},
        {"events": "step_taken"},
        {"events": ["step_taken"] * 33},
        {"url": 5},
        {"extra": 1},
    ],
)
async def test_hostile_webhook_bodies_are_refused(client, admin, change):
    tenant, session = await _shared(client, admin)
    body = {"url": "https://hooks.example.com/kravlab", "events": ["step_taken"], "secret": SECRET}
    r = await client.post(tenant.path("/webhooks"), json={**body, **change}, headers=session)
    assert r.status_code in (400, 422), (change, r.text)
    assert "s" * 1000 not in r.text


_SHARED: dict[str, Any] = {}


async def _shared(client, admin):
    if "tenant" not in _SHARED:
        _SHARED["tenant"] = await _tenant(client, admin)
    return _SHARED["tenant"]


async def test_webhooks_per_tenant_are_bounded(client, admin):
    tenant, session = await _tenant(client, admin)
    body = {"url": "https://hooks.example.com/k", "events": list(KINDS), "secret": SECRET}
    for _ in range(webhooks.MAX_WEBHOOKS):
        r = await client.post(tenant.path("/webhooks"), json=body, headers=session)
        assert r.status_code == 201, r.text
    r = await client.post(tenant.path("/webhooks"), json=body, headers=session)
    assert r.status_code == 409, r.text


@pytest.mark.parametrize(
    ("url", "env", "allowed"),
    [
        ("https://hooks.example.com/k", "production", True),
        ("https://203.0.113.9/k", "production", False),  # documentation range: not global
        ("https://8.8.8.8/k", "production", True),
        ("https://10.1.2.3/k", "production", False),
        ("https://169.254.169.254/latest", "production", False),
        ("https://[::1]/k", "production", False),
        ("https://localhost/k", "production", False),
        # other spellings of internal addresses, found by a probe (inet_aton reads them all)
        ("https://127.1/k", "production", False),
        ("https://2130706433/k", "production", False),
        ("https://0x7f000001/k", "production", False),
        ("https://0177.0.0.1/k", "production", False),
        ("https://10.1/k", "production", False),
        ("https://0/k", "production", False),
        ("https://localhost./k", "production", False),
        ("https://0251.0376.0251.0376/latest", "production", False),
        ("http://127.0.0.1:8080/k", "production", False),
        ("http://127.0.0.1:8080/k", "test", True),
        ("http://localhost/k", "development", True),
        ("http://[::1]:9/k", "demo", True),
        ("http://192.168.1.1/k", "development", False),
    ],
)
def test_where_webhooks_may_point(url, env, allowed):
    assert (webhooks.url_problem(url, env) is None) is allowed, webhooks.url_problem(url, env)


async def test_an_attempt_whose_worker_died_is_made_again_after_its_claim_expires(
    client, admin, receiver
):
    from datetime import UTC, datetime

    from backend.tables import WebhookDelivery

    tenant, session = await _tenant(client, admin)
    hook = receiver(200)
    hook_id = await _hook(client, tenant, session, hook.url)
    invoice_id = await _invoice(client, tenant)
    pause = tenant.path(f"/invoices/{invoice_id}/pause")
    await client.post(pause, json={"reason": "x"}, headers=session)
    scope = await TenantScope.open(UUID(tenant.id), SYSTEM)
    claimed = {
        WebhookDelivery.status: "sending",
        WebhookDelivery.attempts: 1,
        WebhookDelivery.next_attempt_at: datetime.now(UTC) + webhooks.CLAIM_TIMEOUT,
    }
    await scope.update(WebhookDelivery, claimed).where(WebhookDelivery.webhook == UUID(hook_id))
    assert await _deliver(tenant, backoff=0) == {}  # another worker holds the attempt
    expired = {**claimed, WebhookDelivery.next_attempt_at: datetime.now(UTC) - timedelta(seconds=1)}
    await scope.update(WebhookDelivery, expired).where(WebhookDelivery.webhook == UUID(hook_id))
    assert await _deliver(tenant, backoff=0) == {"delivered": 1}
    [delivery] = await _deliveries(client, tenant, session, hook_id)
    assert delivery["status"] == "delivered" and delivery["attempts"] == 2
    assert len(hook.hits) == 1
