"""Rate limits count who the caller is, not how its header is spelled, across every worker.

A probe got 19 of 21 spellings of one key answered 200 past the limit, gave every login guess
its own bucket with a random `Bearer` header, and doubled the limit with two workers; and
password hashing on the event loop slowed `/health` a hundredfold under four login loops.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import threading
import time

import httpx
import pytest

from tests.support.server import LiveServer
from tests.support.world import PASSWORD, agency_user, bearer, login, onboard

LIMIT = 8
LOGIN_FAILURES = 3


def _limited(**env: str) -> LiveServer:
    # A var dir of its own: the limit store is shared by the processes of one var dir.
    settings = {
        "KRAVLAB_RATE_LIMIT_PER_MINUTE": str(LIMIT),
        "KRAVLAB_LOGIN_FAILURES_PER_MINUTE": str(LOGIN_FAILURES),
        "KRAVLAB_VAR_DIR": tempfile.mkdtemp(prefix="kravlab-limits-"),
    }
    return LiveServer(**{**settings, **env}).start()


@pytest.fixture
def limited(migrated):
    """A server per test: a blocked address stays blocked for the rest of its minute."""
    live = _limited()
    yield live
    live.stop()


async def test_each_credential_has_its_own_budget(limited):
    async with httpx.AsyncClient(base_url=limited.url, timeout=60) as http:
        admin = await agency_user(http)
        a, b = await onboard(http, admin), await onboard(http, admin)
        statuses = [
            (await http.get("/api/v1/me", headers=a.key)).status_code for _ in range(LIMIT + 2)
        ]
        assert statuses[:LIMIT] == [200] * LIMIT and statuses[LIMIT:] == [429, 429]
        limited_response = await http.get("/api/v1/me", headers=a.key)
        assert limited_response.status_code == 429 and "ratelimit-reset" in limited_response.headers
        assert (await http.get("/api/v1/me", headers=b.key)).status_code == 200


async def test_bad_credentials_are_limited_per_address(limited):
    async with httpx.AsyncClient(base_url=limited.url, timeout=60) as http:
        admin = await agency_user(http)
        tenant = await onboard(http, admin)
        guesses = [
            (await http.get("/api/v1/me", headers=bearer(f"kl_guess{i}"))).status_code
            for i in range(LIMIT + 1)
        ]
        assert guesses[-1] == 429 and set(guesses[:LIMIT]) == {401}
        # Checked before the credential: a right guess now would not tell the guesser so.
        assert (await http.get("/api/v1/me", headers=tenant.key)).status_code == 429
        assert (await http.get("/health")).status_code == 200  # health is not limited


async def test_spellings_of_one_key_share_one_budget(limited):
    async with httpx.AsyncClient(base_url=limited.url, timeout=60) as http:
        admin = await agency_user(http)
        tenant = await onboard(http, admin)
        key = tenant.api_key
        spellings = [
            f"Bearer {key}",
            f"bearer {key}",
            f"BEARER {key}",
            f"Bearer  {key}",
            f"Bearer   {key}",
            f"bEaReR {key}",
        ]
        answers = [
            (
                await http.get(
                    "/api/v1/me", headers={"Authorization": spellings[i % len(spellings)]}
                )
            ).status_code
            for i in range(LIMIT + len(spellings))
        ]
        assert answers.count(200) == LIMIT and set(answers[LIMIT:]) == {429}


async def test_many_session_tokens_of_one_user_share_one_budget(limited):
    async with httpx.AsyncClient(base_url=limited.url, timeout=60) as http:
        admin = await agency_user(http)
        tenant = await onboard(http, admin)
        tokens = [await login(http, tenant.admin_email, tenant.admin_password) for _ in range(3)]
        answers = [
            (await http.get("/api/v1/me", headers=tokens[i % 3])).status_code
            for i in range(LIMIT + 3)
        ]
        assert answers.count(200) == LIMIT and answers[-3:] == [429, 429, 429]


async def test_logins_are_limited_per_account_whatever_the_headers(limited):
    async with httpx.AsyncClient(base_url=limited.url, timeout=60) as http:
        admin = await agency_user(http)
        tenant = await onboard(http, admin)

        async def attempt(password: str) -> int:
            noise = {"Authorization": f"Bearer {secrets.token_hex(16)}"}
            body = {"email": tenant.admin_email.upper(), "password": password}
            return (await http.post("/api/v1/auth/login", json=body, headers=noise)).status_code

        failures = [await attempt(f"wrong-{i}") for i in range(LOGIN_FAILURES)]
        assert failures == [401] * LOGIN_FAILURES
        locked = await http.post(
            "/api/v1/auth/login",
            json={"email": tenant.admin_email, "password": tenant.admin_password},
        )
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1
        # another account is not locked by this one's failures
        other = await onboard(http, admin)
        assert (await login(http, other.admin_email, other.admin_password))["Authorization"]


async def test_logins_are_limited_per_address_across_accounts(migrated):
    # A general limit above the login budget, so the login budget is what answers 429.
    live = _limited(KRAVLAB_RATE_LIMIT_PER_MINUTE="100")
    async with httpx.AsyncClient(base_url=live.url, timeout=60) as http:
        per_address = LOGIN_FAILURES * 5
        answers = []
        for i in range(per_address + 1):
            body = {"email": f"nobody-{i}@nowhere.test", "password": "guess"}
            answers.append((await http.post("/api/v1/auth/login", json=body)).status_code)
        assert answers[:per_address] == [401] * per_address and answers[-1] == 429
    live.stop()


async def test_two_workers_share_one_budget(migrated):
    live = _limited()
    two = LiveServer(
        workers=2,
        KRAVLAB_RATE_LIMIT_PER_MINUTE=str(LIMIT),
        KRAVLAB_VAR_DIR=live.env["KRAVLAB_VAR_DIR"],
    ).start()
    live.stop()
    try:
        async with httpx.AsyncClient(base_url=two.url, timeout=60) as setup:
            tenant = await onboard(setup, await agency_user(setup))
        answers = []
        for _ in range(2 * LIMIT):
            # A new connection each time, so the kernel spreads them over both workers.
            async with httpx.AsyncClient(base_url=two.url, timeout=60) as http:
                response = await http.get("/api/v1/me", headers=tenant.key)
                answers.append(response.status_code)
        assert answers.count(200) == LIMIT, answers
    finally:
        two.stop()


async def test_password_hashing_does_not_block_the_event_loop():
    """While a login's argon2 runs, the loop keeps serving: ticks go on meanwhile."""
    from tenants.credentials import hash_password, verify_password_off_loop

    stored = hash_password(PASSWORD)
    ticks = 0
    done = threading.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    started = time.perf_counter()
    results = await asyncio.gather(*(verify_password_off_loop(stored, PASSWORD) for _ in range(4)))
    elapsed = time.perf_counter() - started
    done.set()
    await task
    assert results == [True] * 4
    # A loop blocked by four hashes in a row would tick once or not at all meanwhile.
    assert ticks >= 5, (ticks, elapsed)
