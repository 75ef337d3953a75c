"""Rate limiting is per credential: one noisy integration does not starve another."""

from __future__ import annotations

import httpx
import pytest

from tests.support.server import LiveServer
from tests.support.world import agency_user, bearer, onboard

LIMIT = 8


@pytest.fixture(scope="module")
def limited(migrated):
    live = LiveServer(KRAVLAB_RATE_LIMIT_PER_MINUTE=str(LIMIT)).start()
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
        # unknown credentials are limited too (per credential), so guessing keys is slow
        guesses = [
            (await http.get("/api/v1/me", headers=bearer("kl_guess"))).status_code
            for _ in range(LIMIT + 1)
        ]
        assert guesses[-1] == 429 and set(guesses[:LIMIT]) == {401}
        assert (await http.get("/health")).status_code == 200  # health is not limited
