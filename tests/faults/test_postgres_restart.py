"""PostgreSQL restarted under traffic: 503s while it is down, full service after, and no
restart of kravlab. Done to a throwaway PostgreSQL, never the machine's shared one."""

from __future__ import annotations

import asyncio
import os
import time

import httpx
import pytest

from tests.conftest import ENGINE
from tests.faults.conftest import kravlab
from tests.support.server import LiveServer
from tests.support.world import PASSWORD, invoice, login, onboard

pytestmark = pytest.mark.skipif(
    ENGINE != "postgres", reason="a PostgreSQL fault: runs in the PostgreSQL run"
)


async def test_a_postgres_restart_under_traffic_answers_503_then_recovers(own_postgres):
    env = {"DATABASE_URL": own_postgres.url}
    kravlab("migrate", **env)
    email = f"fault-{os.getpid()}@agency.test"
    kravlab("admin", "create", "--email", email, "--password", PASSWORD, **env)
    live = LiveServer(workers=2, **env).start()
    answers: list[tuple[str, int, str]] = []  # (phase, status, body)
    phase = "before"
    acknowledged: set[str] = set()  # batches answered 200: they must all be there after
    try:
        async with httpx.AsyncClient(base_url=live.url, timeout=15) as client:
            tenant = await onboard(client, await login(client, email, PASSWORD))

            async def traffic() -> None:
                n = 0
                while True:
                    n += 1
                    if n % 3 == 0:
                        request = client.post(
                            tenant.path("/invoices/batch"),
                            json={"invoices": [invoice(f"R-{n}", debtor=f"D-{n % 7}")]},
                            headers=tenant.key,
                        )
                    else:
                        request = client.get(tenant.path("/invoices?limit=5"), headers=tenant.key)
                    response = await request
                    answers.append((phase, response.status_code, response.text))
                    if n % 3 == 0 and response.status_code == 200:
                        acknowledged.add(f"R-{n}")
                    await asyncio.sleep(0.02)

            runner = asyncio.create_task(traffic())
            try:
                await _until(lambda: len(answers) >= 30, "traffic before the restart")
                phase = "down"
                await asyncio.to_thread(own_postgres.stop)
                await _until(lambda: _count(answers, "down") >= 20, "answers while down")
                phase = "after"
                await asyncio.to_thread(own_postgres.start)
                await _until(
                    lambda: _count(answers, "after", ok=True) >= 30, "full service after restart"
                )
            finally:
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)
            assert live.process is not None and live.process.poll() is None  # never restarted
            listing = await client.get(tenant.path("/invoices?limit=1000"), headers=tenant.key)
    finally:
        live.stop()

    assert all(status in (200, 503) for _, status, _ in answers), _summary(answers)
    assert {s for p, s, _ in answers if p == "before"} == {200}, _summary(answers)
    down = [(s, body) for p, s, body in answers if p == "down"]
    assert sum(s == 503 for s, _ in down) >= 10, _summary(answers)
    assert all("database is unavailable" in body for s, body in down if s == 503)
    after = [s for p, s, _ in answers if p == "after"]
    first_ok = after.index(200)
    assert set(after[first_ok:]) == {200}, _summary(answers)  # once back, it stays back
    assert listing.status_code == 200
    assert acknowledged <= {i["external_id"] for i in listing.json()["items"]}


def _count(answers: list[tuple[str, int, str]], phase: str, ok: bool = False) -> int:
    return sum(p == phase and (not ok or s == 200) for p, s, _ in answers)


def _summary(answers: list[tuple[str, int, str]]) -> str:
    seen: dict[tuple[str, int], str] = {}
    for p, s, body in answers:
        seen.setdefault((p, s), body[:200])
    return repr(seen)


async def _until(condition, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
