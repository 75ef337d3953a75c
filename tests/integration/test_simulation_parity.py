"""End to end over HTTP: onboard, import a history, fit, simulate two candidates against the
live policy, and get exactly the library's answer on the same files; then through the gate.
On whichever engine the suite runs (SQLite and PostgreSQL in CI)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import date
from typing import Any
from uuid import UUID

from backend.tables import TenantModel
from backend.tenant_model import fit_with_backtest, pool
from simulator.forecast import Options, default_cohort, forecast
from simulator.history import canonical, load_history
from simulator.policy import parse_policies
from simulator.worlds import generate, write
from tests.integration.test_imports import directory_files, imported
from tests.support.world import OVERRIDE, login, onboard

LIVE: dict[str, Any] = {
    "name": "Today",
    "steps": [
        {"day": 5, "action": "reminder", "channel": "email"},
        {"day": 20, "action": "reminder", "channel": "letter", "fee": 6000},
    ],
}
SMS_FIRST: dict[str, Any] = {
    "name": "SMS first",
    "steps": [
        {"day": 2, "action": "reminder", "channel": "sms"},
        {"day": 20, "action": "reminder", "channel": "letter", "fee": 6000},
    ],
}
NOTHING: dict[str, Any] = {"name": "Nothing", "steps": []}


async def _done(client: Any, path: str, headers: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 600
    while True:
        body = (await client.get(path, headers=headers)).json()
        if body["status"] in ("done", "failed"):
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.3)


async def test_the_service_answers_exactly_what_the_library_answers_on_the_same_files(
    client, admin, tmp_path
):
    tenant = await onboard(client, admin)
    session = await login(client, tenant.admin_email, tenant.admin_password)
    world = generate("retail-b2c", 3000, 9, as_of=date.today())
    write(world, tmp_path)
    loaded = await imported(client, tenant, directory_files(tmp_path))
    assert loaded["status"] == "done", loaded
    made = await client.post(tenant.path("/policies"), json={"policy": LIVE}, headers=session)
    live_id = made.json()["id"]
    r = await client.post(
        tenant.path(f"/policies/{live_id}/versions/1/activate"), json=OVERRIDE, headers=session
    )
    assert r.status_code == 422  # the override is the agency_admin's alone
    r = await client.post(
        tenant.path(f"/policies/{live_id}/versions/1/activate"), json=OVERRIDE, headers=admin
    )
    assert r.status_code == 200, r.text
    v2 = await client.post(
        tenant.path(f"/policies/{live_id}/versions"), json={"policy": SMS_FIRST}, headers=session
    )
    assert v2.status_code == 201, v2.text

    request = {
        "candidates": {"sms first": {"policy_id": live_id, "version": 2}, "nothing": NOTHING},
        "horizon_days": 120,
    }
    r = await client.post(tenant.path("/simulations"), json=request, headers=session)
    assert r.status_code == 202, r.text
    body = await _done(client, tenant.path(f"/simulations/{r.json()['id']}"), session)
    assert body["status"] == "done", body["error"]
    service = body["result"]

    # the library on the same files, as `kravlab sim` reads them, with the same pooled prior
    # the service's fit took from the other tenants' models in this database
    history = canonical(load_history(tmp_path, as_of=date.today()))
    others = await TenantModel.select(
        TenantModel.tenant, TenantModel.summary, TenantModel.fitted_at
    ).where((TenantModel.status == "done") & (TenantModel.tenant != UUID(tenant.id)))
    newest = {r["tenant"]: r for r in sorted(others, key=lambda r: str(r["fitted_at"]))}
    prior = pool([json.loads(r["summary"]) for r in newest.values()])
    model, _ = fit_with_backtest(history, prior)
    stored = (await client.get(tenant.path("/model"), headers=session)).json()
    assert stored["fingerprint"] == model.fingerprint  # the very same data, to the last byte
    library = forecast(
        history,
        model,
        {
            "live": parse_policies(LIVE),
            "sms first": parse_policies(SMS_FIRST),
            "nothing": parse_policies(NOTHING),
        },
        default_cohort(history),
        Options(horizon=120, draws=100, calibration=(model.backtest or {}).get("calibration")),
    )
    assert service["cohort"] == library["cohort"]
    assert service["results"] == library["results"]
    assert service["deltas"] == library["deltas"]
    assert service["warnings"] == library["warnings"]
    assert service["model"]["invoices"] == model.invoices == 3000

    # through the gate: version 2 was simulated against the live set on this data
    r = await client.post(tenant.path(f"/policies/{live_id}/versions/2/activate"), headers=session)
    assert r.status_code == 200, r.text
    assert r.json()["simulation"]["delta"]["recovery"] == library["deltas"]["sms first"]["recovery"]
