"""A server killed (SIGKILL) in the middle of a dunning run, then a run again: no step twice,
no fee twice, no letter twice; on SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import date, timedelta
from uuid import UUID

import httpx

from backend.tables import DunningStep, Invoice, Letter
from tests.support.server import LiveServer
from tests.support.world import OVERRIDE, invoice, login, onboard

POLICY = {
    "name": "Letters",
    "steps": [{"day": 5, "action": "reminder", "channel": "letter", "fee": 6000}],
}
INVOICES = 300


async def _tenant(http, admin):
    tenant = await onboard(http, admin)
    session = await login(http, tenant.admin_email, tenant.admin_password)
    await http.put(
        tenant.path("/profile"),
        json={"bankgiro": "123-4567", "dispute_email": "t@k.test"},
        headers=session,
    )
    made = await http.post(tenant.path("/policies"), json={"policy": POLICY}, headers=session)
    activated = await http.post(
        tenant.path(f"/policies/{made.json()['id']}/versions/1/activate"),
        json=OVERRIDE,
        headers=admin,
    )
    assert activated.status_code == 200, activated.text
    today = date.today()
    rows = [
        invoice(
            f"K-{i}", debtor=f"D-{i}", issue=today - timedelta(days=40), due_in=30, fee_agreed=True
        )
        for i in range(INVOICES)
    ]
    for row in rows:
        row["debtor"]["address"] = "Storgatan 1\n111 22 Stockholm"
    r = await http.post(tenant.path("/invoices/batch"), json={"invoices": rows}, headers=tenant.key)
    assert r.status_code == 200, r.text
    return tenant, session


async def test_killed_mid_run_then_run_again_takes_every_step_once(migrated, admin):
    first = LiveServer().start()
    try:
        async with httpx.AsyncClient(base_url=first.url, timeout=300) as http:
            tenant, session = await _tenant(http, admin)
            tid = UUID(tenant.id)
            run = asyncio.create_task(
                http.post(tenant.path("/dunning/run"), json={}, headers=session)
            )
            # Kill the server once some letters exist: recording is done, delivery is under way.
            for _ in range(600):
                if await Letter.count().where(Letter.tenant == tid) >= 20:
                    break
                await asyncio.sleep(0.05)
            assert first.process is not None
            first.process.send_signal(signal.SIGKILL)
            first.process.wait(timeout=30)
            with contextlib.suppress(httpx.HTTPError):  # the answer died with the server
                await run
    finally:
        first.stop()
    letters_at_kill = await Letter.count().where(Letter.tenant == tid)
    assert 0 < letters_at_kill < INVOICES, "the kill did not land mid-delivery"

    second = LiveServer().start()
    try:
        async with httpx.AsyncClient(base_url=second.url, timeout=300) as http:
            again = await http.post(tenant.path("/dunning/run"), json={}, headers=session)
            assert again.status_code == 200, again.text
            assert again.json()["recorded"] == 0  # every step was recorded before the kill
            # The run queued the letters job again: it makes the letters still waiting.
            for _ in range(1200):
                waiting = await DunningStep.count().where(
                    (DunningStep.tenant == tid) & (DunningStep.status == "pending")
                )
                if not waiting:
                    break
                await asyncio.sleep(0.05)
    finally:
        second.stop()

    steps = await DunningStep.select(
        DunningStep.id, DunningStep.invoice, DunningStep.status, DunningStep.fee
    ).where(DunningStep.tenant == tid)
    assert len(steps) == INVOICES
    assert len({str(s["invoice"]) for s in steps}) == INVOICES  # one step per invoice
    letters = await Letter.select(Letter.step).where(Letter.tenant == tid)
    per_step = [str(letter["step"]) for letter in letters]
    assert len(per_step) == len(set(per_step))  # no letter twice
    statuses = [s["status"] for s in steps]
    # Letters are claimed one at a time: the attempt the kill interrupted stays claimed until
    # its claim times out; every other step went out.
    assert statuses.count("sent") >= INVOICES - 1 and set(statuses) <= {"sent", "sending"}
    fees = await Invoice.select(Invoice.fees_charged).where(Invoice.tenant == tid)
    assert sorted({f["fees_charged"] for f in fees}) == [6000]  # charged once, each
