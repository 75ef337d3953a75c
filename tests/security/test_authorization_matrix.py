"""Every route × every role and key scope × own tenant and another tenant.

The routes come from the app's own route table, so a new route is walked the day it is
added; it must also appear in ROUTE_PERMISSIONS (the spec below, written from API.md) and
in BODIES, or this test fails and says so.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import date
from typing import Any

import pytest

from backend.app import create_app
from tests.support.world import api_key, bearer, invoice, login, onboard, payment, tenant_user

# Who may do what (API.md): permission -> (roles, API key scopes).
SPEC: dict[str, tuple[set[str], set[str]]] = {
    "me": (
        {"agency_admin", "agency_staff", "tenant_admin", "tenant_member"},
        {"read", "invoices:write", "payments:write", "policies:write", "simulations:write"},
    ),
    "tenants:create": ({"agency_admin"}, set()),
    "tenants:read": ({"agency_admin", "agency_staff", "tenant_admin", "tenant_member"}, {"read"}),
    "tenants:manage": ({"agency_admin"}, set()),
    "rates:manage": ({"agency_admin"}, set()),
    "keys:manage": ({"agency_admin", "tenant_admin"}, set()),
    "users:manage": ({"agency_admin", "tenant_admin"}, set()),
    "read": ({"agency_admin", "agency_staff", "tenant_admin", "tenant_member"}, {"read"}),
    "invoices:write": ({"agency_admin", "tenant_admin"}, {"invoices:write"}),
    "invoices:manage": (
        {"agency_admin", "agency_staff", "tenant_admin", "tenant_member"},
        {"invoices:write"},
    ),
    "payments:write": ({"agency_admin", "tenant_admin"}, {"payments:write"}),
    "payments:match": (
        {"agency_admin", "agency_staff", "tenant_admin", "tenant_member"},
        {"payments:write"},
    ),
    "policies:write": ({"agency_admin", "tenant_admin", "tenant_member"}, {"policies:write"}),
    "policies:activate": ({"agency_admin", "tenant_admin"}, set()),
    "dunning:run": ({"agency_admin", "agency_staff", "tenant_admin"}, set()),
    "profile:manage": ({"agency_admin", "tenant_admin"}, set()),
    "webhooks:manage": ({"agency_admin", "tenant_admin"}, set()),
    "cases:work": ({"agency_admin", "agency_staff"}, set()),
    "portfolio:simulate": ({"agency_admin", "agency_staff"}, set()),
    "simulations:run": (
        {"agency_admin", "agency_staff", "tenant_admin", "tenant_member"},
        {"simulations:write"},
    ),
    "imports:write": ({"agency_admin", "agency_staff", "tenant_admin"}, {"invoices:write"}),
    "portfolio:read": ({"agency_admin", "agency_staff"}, set()),
}

T = "/api/v1/tenants/{tenant_id}"
C = "/console/tenants/{tenant_id}"
ROUTE_PERMISSIONS = {
    ("GET", "/api/v1/me"): "me",
    ("POST", "/api/v1/tenants"): "tenants:create",
    ("GET", "/api/v1/tenants"): "tenants:read",
    ("GET", T): "tenants:read",
    ("PATCH", T): "tenants:manage",
    ("DELETE", T): "tenants:manage",
    ("GET", "/api/v1/audit"): "tenants:manage",
    ("GET", "/api/v1/reference-rates"): "me",
    ("POST", "/api/v1/reference-rates"): "rates:manage",
    ("POST", T + "/api-keys"): "keys:manage",
    ("GET", T + "/api-keys"): "keys:manage",
    ("DELETE", T + "/api-keys/{key_id}"): "keys:manage",
    ("POST", T + "/users"): "users:manage",
    ("GET", T + "/users"): "users:manage",
    ("GET", T + "/audit"): "read",
    ("POST", T + "/invoices/batch"): "invoices:write",
    ("GET", T + "/invoices"): "read",
    ("GET", T + "/invoices/{invoice_id}"): "read",
    ("POST", T + "/invoices/{invoice_id}/pause"): "invoices:manage",
    ("POST", T + "/invoices/{invoice_id}/resume"): "invoices:manage",
    ("POST", T + "/invoices/{invoice_id}/dispute"): "invoices:manage",
    ("POST", T + "/invoices/{invoice_id}/resolve"): "invoices:manage",
    ("POST", T + "/payments/batch"): "payments:write",
    ("GET", T + "/payments"): "read",
    ("POST", T + "/payments/{payment_id}/match"): "payments:match",
    ("POST", T + "/policies"): "policies:write",
    ("GET", T + "/policies"): "read",
    ("GET", T + "/policies/{policy_id}"): "read",
    ("POST", T + "/policies/{policy_id}/versions"): "policies:write",
    ("POST", T + "/policies/{policy_id}/versions/{number}/activate"): "policies:activate",
    ("POST", T + "/policies/{policy_id}/versions/{number}/retire"): "policies:activate",
    ("GET", T + "/dunning/preview"): "read",
    ("POST", T + "/dunning/run"): "dunning:run",
    ("GET", T + "/invoices/{invoice_id}/contacts"): "read",
    ("GET", T + "/invoices/{invoice_id}/letters/{letter_file}"): "read",
    ("GET", T + "/profile"): "read",
    ("PUT", T + "/profile"): "profile:manage",
    ("GET", T + "/events"): "read",
    ("GET", "/api/v1/cases"): "cases:work",
    ("GET", "/api/v1/calls"): "cases:work",
    ("GET", T + "/templates"): "read",
    ("PUT", T + "/templates/{language}/{file}"): "profile:manage",
    ("DELETE", T + "/templates/{language}/{file}"): "profile:manage",
    ("POST", T + "/templates/preview"): "read",
    ("POST", T + "/invoices/{invoice_id}/payment-plan"): "invoices:manage",
    ("GET", T + "/invoices/{invoice_id}/payment-plan"): "read",
    ("POST", T + "/invoices/{invoice_id}/contacts/{step_id}/outcome"): "cases:work",
    ("GET", T + "/cases"): "read",
    ("GET", T + "/cases/{case_id}"): "read",
    ("POST", T + "/cases/{case_id}/assign"): "cases:work",
    ("POST", T + "/cases/{case_id}/notes"): "cases:work",
    ("POST", T + "/cases/{case_id}/close"): "cases:work",
    ("POST", T + "/webhooks"): "webhooks:manage",
    ("GET", T + "/webhooks"): "webhooks:manage",
    ("DELETE", T + "/webhooks/{webhook_id}"): "webhooks:manage",
    ("GET", T + "/webhooks/{webhook_id}/deliveries"): "webhooks:manage",
    ("POST", T + "/simulations"): "simulations:run",
    ("GET", T + "/simulations"): "read",
    ("GET", T + "/simulations/{simulation_id}"): "read",
    ("DELETE", T + "/simulations/{simulation_id}"): "simulations:run",
    ("GET", T + "/model"): "read",
    ("POST", T + "/model"): "simulations:run",
    ("POST", "/api/v1/portfolio/simulations"): "portfolio:simulate",
    ("GET", "/api/v1/portfolio/simulations/{run_id}"): "portfolio:simulate",
    ("DELETE", "/api/v1/portfolio/simulations/{run_id}"): "portfolio:simulate",
    ("POST", T + "/imports"): "imports:write",
    ("GET", T + "/imports"): "read",
    ("GET", T + "/imports/{import_id}"): "read",
    ("GET", "/api/v1/portfolio"): "portfolio:read",
    ("GET", "/api/v1/portfolio/trend"): "portfolio:read",
    ("GET", T + "/dashboard"): "read",
    # The console's pages and actions (frontend_api.console): the same guard and permissions;
    # they take the same bearer credentials as the API besides the browser's session cookie.
    ("GET", "/console"): "me",
    ("POST", "/console/logout"): "me",
    ("GET", "/console/portfolio"): "portfolio:read",
    ("GET", "/console/portfolio/trend"): "portfolio:read",
    ("GET", "/console/work"): "cases:work",
    ("GET", C + "/cases/{case_id}"): "cases:work",
    ("POST", C + "/cases/{case_id}/assign"): "cases:work",
    ("POST", C + "/cases/{case_id}/notes"): "cases:work",
    ("POST", C + "/cases/{case_id}/close"): "cases:work",
    ("POST", C + "/invoices/{invoice_id}/contacts/{step_id}/outcome"): "cases:work",
    ("GET", C): "read",
    ("GET", C + "/invoices"): "read",
    ("GET", C + "/invoices/{invoice_id}"): "read",
    ("POST", C + "/invoices/{invoice_id}/state"): "invoices:manage",
    ("POST", C + "/invoices/{invoice_id}/payment-plan"): "invoices:manage",
    ("GET", C + "/policies"): "read",
    ("GET", C + "/policies/{policy_id}"): "read",
    ("POST", C + "/policies/check"): "policies:write",
    ("POST", C + "/policies/save"): "policies:write",
    ("POST", C + "/policies/{policy_id}/versions/{number}/activate"): "policies:activate",
    ("POST", C + "/policies/{policy_id}/versions/{number}/simulate"): "simulations:run",
    ("GET", C + "/simulations/{simulation_id}"): "read",
}
WEBHOOK = {"url": "http://127.0.0.1:9/hook", "events": ["step_taken"], "secret": "s" * 24}
POLICY = {"name": "Matrix", "steps": [{"day": 5, "action": "reminder", "channel": "email"}]}
PUBLIC = {
    ("POST", "/api/v1/auth/login"),
    ("GET", "/health"),
    ("GET", "/"),  # a redirect to /console
    ("GET", "/console/login"),
    ("POST", "/console/login"),
    ("GET", "/console/static/{file_path:path}"),
}


def _body(method: str, path: str, world: dict[str, Any], tenant_id: str | None) -> Any:
    tag = secrets.token_hex(4)
    bodies = {
        ("POST", "/api/v1/tenants"): {
            "name": "M",
            "slug": f"m-{tag}",
            "country": "SE",
            "currency": "SEK",
            "admin_email": f"m-{tag}@matrix.test",
        },
        ("PATCH", T): {"name": "Matrix tenant"},
        # A seeded half-year: allowed callers get 409, and the shared table stays as it was.
        ("POST", "/api/v1/reference-rates"): {"valid_from": "2022-01-01", "rate_bp": 0},
        ("POST", T + "/api-keys"): {"name": "m", "scopes": ["read"]},
        ("POST", T + "/users"): {"email": f"u-{tag}@matrix.test", "role": "tenant_member"},
        ("POST", T + "/invoices/batch"): {"invoices": [invoice(f"MX-{tag}")]},
        ("POST", T + "/invoices/{invoice_id}/pause"): {"reason": "matrix"},
        ("POST", T + "/invoices/{invoice_id}/resume"): {"reason": "matrix"},
        ("POST", T + "/invoices/{invoice_id}/dispute"): {"reason": "matrix"},
        ("POST", T + "/invoices/{invoice_id}/resolve"): {"reason": "matrix"},
        ("POST", T + "/payments/batch"): {"payments": [payment(f"MP-{tag}", 100)]},
        ("POST", T + "/payments/{payment_id}/match"): {
            "invoice_id": world["invoice_of"].get(tenant_id, "")
        },
        ("POST", T + "/policies"): {"policy": POLICY},
        ("POST", T + "/policies/{policy_id}/versions"): {"policy": POLICY},
        ("POST", T + "/policies/{policy_id}/versions/{number}/activate"): {},
        ("POST", T + "/policies/{policy_id}/versions/{number}/retire"): None,
        ("POST", T + "/dunning/run"): {},
        ("POST", T + "/simulations"): {"candidates": {"m": POLICY}, "horizon_days": 30},
        ("POST", T + "/model"): None,
        ("POST", "/api/v1/portfolio/simulations"): {
            "tenant_ids": [world["own"].id],
            "horizon_days": 30,
        },
        ("PUT", T + "/profile"): {"bankgiro": "123-4567"},
        ("POST", T + "/webhooks"): WEBHOOK,
        ("POST", T + "/cases/{case_id}/assign"): {"assignee": None},
        ("PUT", T + "/templates/{language}/{file}"): {"source": "Påminnelse {{ invoice_number }}"},
        ("POST", T + "/templates/preview"): {"kind": "reminder"},
        ("POST", T + "/invoices/{invoice_id}/payment-plan"): {
            "installments": 3,
            "first_due": date.today().isoformat(),
        },
        ("POST", T + "/invoices/{invoice_id}/contacts/{step_id}/outcome"): {"outcome": "reached"},
        ("POST", T + "/cases/{case_id}/notes"): {"text": "matrix"},
        ("POST", T + "/cases/{case_id}/close"): {"outcome": "written_off"},
        # Not multipart: allowed callers get 415 (tests/integration/test_imports.py uploads).
        ("POST", T + "/imports"): None,
        # The console's actions read forms: a JSON body is an empty form (422 when allowed).
        **{(m, p): {} for (m, p) in ROUTE_PERMISSIONS if m == "POST" and p.startswith("/console")},
    }
    if method in ("GET", "DELETE"):
        return None
    return bodies[(method, path)]


def app_routes() -> list[tuple[str, str, str | None]]:
    """(method, path with {names}, declared permission) of every API route in the app."""
    found = []
    for route in create_app().routes:
        if route.path.startswith("/schema"):
            continue
        for handler in getattr(route, "route_handlers", []):
            for method in handler.http_methods:
                if method in ("OPTIONS", "HEAD"):
                    continue
                path = route.path
                for name in (
                    "tenant_id",
                    "invoice_id",
                    "payment_id",
                    "key_id",
                    "policy_id",
                    "webhook_id",
                    "case_id",
                    "step_id",
                    "simulation_id",
                    "run_id",
                    "import_id",
                ):
                    path = path.replace("{" + name + ":uuid}", "{" + name + "}")
                path = path.replace("{number:int}", "{number}")
                path = path.replace("{letter_file:str}", "{letter_file}")
                path = path.replace("{language:str}/{file:str}", "{language}/{file}")
                found.append((method, path, handler.opt.get("permission")))
    return found


def test_every_route_is_in_the_spec_and_declares_its_permission():
    routes = app_routes()
    assert len(routes) >= len(ROUTE_PERMISSIONS)
    for method, path, declared in routes:
        if (method, path) in PUBLIC:
            continue
        assert (method, path) in ROUTE_PERMISSIONS, f"add {method} {path} to the authorization spec"
        assert declared == ROUTE_PERMISSIONS[(method, path)], (method, path, declared)


@pytest.fixture(scope="module")
async def world(client, admin) -> dict[str, Any]:
    own, other = await onboard(client, admin), await onboard(client, admin)
    marker = f"LEAK{secrets.token_hex(6)}"
    own_admin = await login(client, own.admin_email, own.admin_password)
    other_admin = await login(client, other.admin_email, other.admin_password)
    invoice_of, payment_of, policy_of, webhook_of, import_of = {}, {}, {}, {}, {}
    for t, session, prefix in ((own, own_admin, "OWN"), (other, other_admin, marker)):
        rows = [
            invoice(
                f"{prefix}-INV",
                debtor=f"{prefix}-DEBTOR",
                description=prefix,
                reference=f"{prefix}-REF",
            )
        ]
        await client.post(t.path("/invoices/batch"), json={"invoices": rows}, headers=t.key)
        await client.post(
            t.path("/payments/batch"),
            json={"payments": [payment(f"{prefix}-PAY", 5, reference="none")]},
            headers=t.key,
        )
        invoice_of[t.id] = (await client.get(t.path("/invoices"), headers=t.key)).json()["items"][
            0
        ]["id"]
        payment_of[t.id] = (await client.get(t.path("/payments"), headers=t.key)).json()["items"][
            0
        ]["id"]
        made = await client.post(
            t.path("/policies"), json={"policy": {**POLICY, "name": prefix}}, headers=session
        )
        policy_of[t.id] = made.json()["id"]
        hook = await client.post(t.path("/webhooks"), json=WEBHOOK, headers=session)
        webhook_of[t.id] = hook.json()["id"]
        # A refused import (nothing loaded): the tenant's book stays as it is.
        made = await client.post(
            t.path("/imports"),
            files={"invoices.csv": ("i.csv", "x\n"), "payments.csv": ("p.csv", "y\n")},
            headers=t.key,
        )
        import_of[t.id] = made.json()["id"]
    credentials: dict[str, tuple[dict[str, str], str | None, str | None, str | None]] = {
        # name -> (headers, role, scope, tenant_id)
        "anonymous": ({}, None, None, None),
        "agency_admin": (admin, "agency_admin", None, None),
        "agency_staff": (await _agency_staff(client), "agency_staff", None, None),
        "tenant_admin": (own_admin, "tenant_admin", None, own.id),
        "tenant_member": (
            await tenant_user(client, own, own_admin, "tenant_member"),
            "tenant_member",
            None,
            own.id,
        ),
    }
    for scope in (
        "read",
        "invoices:write",
        "payments:write",
        "policies:write",
        "simulations:write",
    ):
        credentials[f"key:{scope}"] = (
            await api_key(client, own, own_admin, [scope]),
            None,
            scope,
            own.id,
        )
    letter_of = {t.id: await _letter(t.id, invoice_of[t.id]) for t in (own, other)}
    return {
        "own": own,
        "other": other,
        "marker": marker,
        "credentials": credentials,
        "invoice_of": invoice_of,
        "payment_of": payment_of,
        "policy_of": policy_of,
        "webhook_of": webhook_of,
        "import_of": import_of,
        "case_of": {t.id: await _case(t.id, invoice_of[t.id]) for t in (own, other)},
        "plans": [await _plan(t.id, invoice_of[t.id]) for t in (own, other)],
        "step_of": {t.id: await _step_of(letter_of[t.id]) for t in (own, other)},
        "simulation_of": {t.id: await _simulation(t.id) for t in (own, other)},
        "run_id": await _portfolio_run(),
        "letter_of": letter_of,
        "admins": {own.id: own_admin, other.id: other_admin},
    }


async def _letter(tenant_id: str, invoice_id: str) -> str:
    """A stored letter of the tenant's invoice (the dunning engine's own tests make real ones)."""
    from datetime import UTC, date, datetime

    from backend.tables import DunningStep, Letter

    step_id, letter_id = uuid.uuid4(), uuid.uuid4()
    await DunningStep.insert(
        DunningStep(
            id=step_id,
            tenant=tenant_id,
            invoice=invoice_id,
            ordinal=0,
            run_date=date.today(),
            policy=uuid.uuid4(),
            version=1,
            step_index=0,
            day=1,
            action="reminder",
            channel="letter",
            status="sent",
            created_at=datetime.now(UTC),
        )
    )
    await Letter.insert(
        Letter(
            id=letter_id,
            tenant=tenant_id,
            invoice=invoice_id,
            step=step_id,
            pdf=b"%PDF-1.4 matrix",
            created_at=datetime.now(UTC),
        )
    )
    return str(letter_id)


async def _simulation(tenant_id: str) -> str:
    """A finished simulation and a fitted model's row of the tenant (the simulation service's
    own tests make real ones): allowed callers read them, and a cancel is a 409."""
    import json
    from datetime import UTC, datetime

    from backend.tables import Simulation, TenantModel

    simulation_id = uuid.uuid4()
    request = {"candidates": {}, "baseline": {"name": "live", "kind": "live", "policies": []}}
    await Simulation.insert(
        Simulation(
            id=simulation_id,
            tenant=tenant_id,
            status="done",
            progress=1000,
            request=json.dumps(request),
            request_key="matrix",
            result="{}",
            created_by="matrix",
            created_at=datetime.now(UTC),
        )
    )
    summary = {"as_of": "2026-01-01", "classes": 1, "parameters": [], "priors": [], "warnings": []}
    await TenantModel.insert(
        TenantModel(
            id=uuid.uuid4(),
            tenant=tenant_id,
            status="done",
            fingerprint="matrix",
            summary=json.dumps({**summary, "backtest": None}),
            created_at=datetime.now(UTC),
            fitted_at=datetime.now(UTC),
        )
    )
    return str(simulation_id)


async def _portfolio_run() -> str:
    """A finished portfolio simulation (tests/faults/test_simulation_worker.py makes real ones)."""
    import json
    from datetime import UTC, datetime

    from backend.tables import PortfolioRun

    run_id = uuid.uuid4()
    await PortfolioRun.insert(
        PortfolioRun(
            id=run_id,
            status="done",
            request=json.dumps({"tenants": [], "horizon_days": 30}),
            result=json.dumps({"currencies": {}, "tenants": []}),
            created_by="matrix",
            created_at=datetime.now(UTC),
        )
    )
    return str(run_id)


async def _step_of(letter_id: str) -> str:
    from backend.tables import Letter

    row = await Letter.select(Letter.step).where(Letter.id == letter_id).first()
    return str(row["step"])


async def _plan(tenant_id: str, invoice_id: str) -> str:
    """A payment plan of the tenant's invoice (tests/integration/test_plans.py makes real ones)."""
    from datetime import UTC, datetime

    from backend.tables import PaymentPlan

    plan_id = uuid.uuid4()
    await PaymentPlan.insert(
        PaymentPlan(
            id=plan_id,
            tenant=tenant_id,
            invoice=invoice_id,
            status="completed",
            created_at=datetime.now(UTC),
            created_by="matrix",
        )
    )
    return str(plan_id)


async def _case(tenant_id: str, invoice_id: str) -> str:
    """A collection case of the tenant's invoice (the engine's own tests open real ones)."""
    from datetime import UTC, date, datetime

    from backend.tables import CollectionCase

    case_id = uuid.uuid4()
    await CollectionCase.insert(
        CollectionCase(
            id=case_id,
            tenant=tenant_id,
            invoice=invoice_id,
            opened_on=date.today(),
            status="open",
            amount=100,
            opened_at=datetime.now(UTC),
        )
    )
    return str(case_id)


async def _agency_staff(client):
    from tests.support.world import agency_user

    return await agency_user(client, "agency_staff")


def _allowed(permission: str, role: str | None, scope: str | None) -> bool:
    roles, scopes = SPEC[permission]
    return (role in roles) if role else (scope in scopes)


async def _path_for(client, admin, world, path, tenant_id, destructive):
    """Concrete path; a destructive call that is going to be allowed gets a throwaway target."""
    params = {
        "tenant_id": tenant_id,
        "invoice_id": world["invoice_of"].get(tenant_id, str(uuid.uuid4())),
        "payment_id": world["payment_of"].get(tenant_id, str(uuid.uuid4())),
        "policy_id": world["policy_of"].get(tenant_id, str(uuid.uuid4())),
        "letter_file": f"{world['letter_of'].get(tenant_id, uuid.uuid4())}.pdf",
        "number": 1,
        "webhook_id": world["webhook_of"].get(tenant_id, str(uuid.uuid4())),
        "case_id": world["case_of"].get(tenant_id, str(uuid.uuid4())),
        "step_id": world["step_of"].get(tenant_id, str(uuid.uuid4())),
        "simulation_id": world["simulation_of"].get(tenant_id, str(uuid.uuid4())),
        "import_id": world["import_of"].get(tenant_id, str(uuid.uuid4())),
        "language": "sv",
        "file": "reminder.subject.txt",
    }
    if destructive and "{webhook_id}" in path:  # a throwaway webhook to delete
        session = world["admins"].get(tenant_id, admin)
        made = await client.post(
            f"/api/v1/tenants/{tenant_id}/webhooks", json=WEBHOOK, headers=session
        )
        params["webhook_id"] = made.json()["id"]
    if "{key_id}" in path:
        session = world["admins"].get(tenant_id, admin)
        target = world["own"] if tenant_id == world["own"].id else world["other"]
        await api_key(client, target, session, ["read"])
        keys = (await client.get(target.path("/api-keys"), headers=session)).json()["items"]
        params["key_id"] = keys[-1]["id"]  # the one just made (listed oldest first)
    if destructive and path == T:
        params["tenant_id"] = (await onboard(client, admin)).id
    return path.format(**params)


@pytest.mark.parametrize("route", sorted(ROUTE_PERMISSIONS), ids=lambda r: f"{r[0]} {r[1]}")
async def test_route_against_every_credential(client, admin, world, route):
    method, path = route
    permission = ROUTE_PERMISSIONS[route]
    targets = [world["own"].id, world["other"].id] if "{tenant_id}" in path else [None]
    failures = []
    for name, (headers, role, scope, bound) in world["credentials"].items():
        for tenant_id in targets:
            other_tenant = tenant_id is not None and bound is not None and tenant_id != bound
            if name == "anonymous":
                expected = {401}
            elif other_tenant:
                expected = {404}
            elif not _allowed(permission, role, scope):
                expected = {403}
            else:
                expected = None  # allowed: anything but 401/403/404/5xx
            destructive = method == "DELETE" and expected is None
            url = (
                await _path_for(client, admin, world, path, tenant_id, destructive)
                if tenant_id
                else path.replace("{run_id}", world["run_id"])
            )
            body = _body(method, path, world, tenant_id)
            r = await client.request(method, url, json=body, headers=headers)
            ok = (
                r.status_code in expected
                if expected
                else r.status_code < 500 and r.status_code not in (401, 403, 404)
            )
            if not ok:
                failures.append(f"{name} {method} {url}: {r.status_code} {r.text[:200]}")
            if bound is not None and world["marker"] in r.text:
                failures.append(f"{name} {method} {url}: another tenant's data leaked")
            if r.status_code in (403, 404) and world["other"].id in r.text and bound is not None:
                failures.append(f"{name} {method} {url}: the error names another tenant")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    "path",
    [
        T + "/invoices/{invoice_id}",
        T + "/invoices/{invoice_id}/pause",
        T + "/payments/{payment_id}/match",
    ],
)
async def test_other_tenants_objects_under_own_tenant_are_missing(client, world, path):
    own, other = world["own"], world["other"]
    url = path.format(
        tenant_id=own.id,
        invoice_id=world["invoice_of"][other.id],
        payment_id=world["payment_of"][other.id],
    )
    method = "GET" if path.endswith("{invoice_id}") else "POST"
    body = (
        {"reason": "x"} if path.endswith("pause") else {"invoice_id": world["invoice_of"][own.id]}
    )
    for name in (
        "tenant_admin",
        "agency_admin",
        "key:invoices:write",
        "key:payments:write",
        "key:read",
    ):
        headers = world["credentials"][name][0]
        r = await client.request(
            method, url, json=None if method == "GET" else body, headers=headers
        )
        if r.status_code == 403:
            continue  # this credential may not call the route at all
        assert r.status_code == 404, (name, url, r.text)
        assert world["marker"] not in r.text


async def test_lists_and_counts_never_include_another_tenant(client, world):
    own = world["own"]
    for name, (headers, _role, _scope, bound) in world["credentials"].items():
        if bound is None:
            continue
        for url in (
            own.path("/invoices?limit=1000"),
            own.path("/payments?limit=1000"),
            own.path("/audit?limit=1000"),
            "/api/v1/tenants?limit=1000",
            own.path("/users"),
            own.path("/api-keys"),
        ):
            r = await client.get(url, headers=headers)
            assert world["marker"] not in r.text and world["other"].id not in r.text, (name, url)


async def test_unknown_token_shapes_are_401(client, world):
    own = world["own"]
    for token in (f"kl_{secrets.token_urlsafe(32)}", "Bearer", "x" * 5000, "kl_' OR 1=1 --"):
        r = await client.get(own.path("/invoices"), headers=bearer(token))
        assert r.status_code == 401, token
