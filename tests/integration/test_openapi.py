"""The published OpenAPI document agrees with API.md for what is built."""

from __future__ import annotations

T = "/api/v1/tenants/{tenant_id}"
CONTRACT = {
    "/api/v1/auth/login": {"post"},
    "/api/v1/me": {"get"},
    "/api/v1/tenants": {"get", "post"},
    T: {"get", "patch", "delete"},
    T + "/api-keys": {"post"},
    T + "/api-keys/{key_id}": {"delete"},
    T + "/users": {"post"},
    T + "/invoices/batch": {"post"},
    T + "/invoices": {"get"},
    T + "/invoices/{invoice_id}": {"get"},
    T + "/invoices/{invoice_id}/pause": {"post"},
    T + "/invoices/{invoice_id}/resume": {"post"},
    T + "/invoices/{invoice_id}/dispute": {"post"},
    T + "/invoices/{invoice_id}/resolve": {"post"},
    T + "/payments/batch": {"post"},
    T + "/payments": {"get"},
    T + "/payments/{payment_id}/match": {"post"},
}


async def test_openapi_lists_the_contract(client):
    r = await client.get("/schema/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    for path, methods in CONTRACT.items():
        assert path in doc["paths"], path
        assert methods <= set(doc["paths"][path]), (path, set(doc["paths"][path]))
    batch = doc["paths"][T + "/invoices/batch"]["post"]
    assert "requestBody" in batch
    assert "bearer" in doc["components"]["securitySchemes"]
    schemas = doc["components"]["schemas"]
    invoice = next(v for k, v in schemas.items() if k.endswith("InvoiceIn"))
    assert {"external_id", "debtor", "issue_date", "due_date", "amount", "currency"} <= set(
        invoice["required"]
    )
    assert (await client.get("/schema")).status_code == 200
