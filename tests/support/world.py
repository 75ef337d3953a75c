"""Building blocks for tests: agency users, onboarded tenants, credentials, invoice rows."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from simulator.history import day_date
from tenants.onboarding import create_agency_user

PASSWORD = "correct horse battery staple"
# Policies set up for a test of something else go live by an agency_admin's override of
# the simulation gate (tests/integration/test_simulations.py tests the gate itself).
OVERRIDE = {"override_reason": "set up in a test without a simulation"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def agency_user(client: Any, role: str = "agency_admin") -> dict[str, str]:
    email = f"{role}-{secrets.token_hex(4)}@agency.test"
    await create_agency_user(email, PASSWORD, role)
    return await login(client, email, PASSWORD)


async def login(client: Any, email: str, password: str) -> dict[str, str]:
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])


@dataclass
class TenantHandle:
    id: str
    slug: str
    currency: str
    admin_email: str
    admin_password: str
    api_key: str
    key: dict[str, str] = field(default_factory=dict)  # headers of the default API key

    def path(self, rest: str = "") -> str:
        return f"/api/v1/tenants/{self.id}{rest}"


async def onboard(
    client: Any, admin: dict[str, str], currency: str = "SEK", **extra: Any
) -> TenantHandle:
    slug = f"t-{secrets.token_hex(5)}"
    body = {
        "name": f"Tenant {slug}",
        "slug": slug,
        "country": "SE",
        "currency": currency,
        "admin_email": f"admin@{slug}.test",
        **extra,
    }
    response = await client.post("/api/v1/tenants", json=body, headers=admin)
    assert response.status_code == 201, response.text
    data = response.json()
    return TenantHandle(
        data["id"],
        slug,
        currency,
        data["admin"]["email"],
        data["admin"]["password"],
        data["api_key"],
        bearer(data["api_key"]),
    )


async def api_key(
    client: Any, tenant: TenantHandle, admin: dict[str, str], scopes: list[str]
) -> dict[str, str]:
    response = await client.post(
        tenant.path("/api-keys"), json={"name": ",".join(scopes), "scopes": scopes}, headers=admin
    )
    assert response.status_code == 201, response.text
    return bearer(response.json()["key"])


async def tenant_user(
    client: Any, tenant: TenantHandle, admin: dict[str, str], role: str
) -> dict[str, str]:
    email = f"{role}-{secrets.token_hex(4)}@{tenant.slug}.test"
    response = await client.post(
        tenant.path("/users"), json={"email": email, "role": role}, headers=admin
    )
    assert response.status_code == 201, response.text
    return await login(client, email, response.json()["password"])


def invoice(
    external_id: str,
    *,
    debtor: str = "D-1",
    amount: int = 100_000,
    currency: str = "SEK",
    issue: date | None = None,
    due_in: int = 30,
    debtor_type: str = "b2c",
    **extra: Any,
) -> dict[str, Any]:
    issue = issue or date.today() - timedelta(days=10)
    return {
        "external_id": external_id,
        "debtor": {"external_id": debtor, "name": f"Debtor {debtor}", "type": debtor_type},
        "issue_date": issue.isoformat(),
        "due_date": (issue + timedelta(days=due_in)).isoformat(),
        "amount": amount,
        "currency": currency,
        **extra,
    }


def payment(
    external_id: str,
    amount: int,
    *,
    invoice_external_id: str | None = None,
    paid: date | None = None,
    currency: str = "SEK",
    **extra: Any,
) -> dict[str, Any]:
    row = {
        "external_id": external_id,
        "amount": amount,
        "currency": currency,
        "paid_date": (paid or date.today()).isoformat(),
        **extra,
    }
    if invoice_external_id is not None:
        row["invoice_external_id"] = invoice_external_id
    return row


def book_rows(world: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A world's history as ERP batches (invoices with their debtors, matched payments)."""
    h = world.history
    invoices = [
        {
            "external_id": str(h.invoice_id[i]),
            "debtor": {
                "external_id": str(h.debtor_ids[h.debtor[i]]),
                "name": f"Debtor {h.debtor[i]}",
                "type": "b2c" if h.b2c[i] else "b2b",
            },
            "issue_date": day_date(int(h.issue[i])).isoformat(),
            "due_date": day_date(int(h.due[i])).isoformat(),
            "amount": int(h.amount[i]),
            "currency": "SEK",
            "e_invoice": bool(h.e_invoice[i]),
            "fee_agreed": bool(h.fee_agreed[i]),
        }
        for i in range(h.size)
    ]
    payments = [
        {
            "external_id": f"P-{j}",
            "amount": int(h.pay_amount[j]),
            "currency": "SEK",
            "paid_date": day_date(int(h.pay_day[j])).isoformat(),
            "invoice_external_id": str(h.invoice_id[h.pay_invoice[j]]),
        }
        for j in range(len(h.pay_day))
    ]
    return invoices, payments
