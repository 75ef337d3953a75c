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


def _operations(doc):
    for path, methods in doc["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


async def test_every_answer_has_a_published_shape(client):
    """No handler returns a bare dict: every success names a component, every error the
    one error shape."""
    doc = (await client.get("/schema/openapi.json")).json()
    for path, method, operation in _operations(doc):
        for status, response in operation["responses"].items():
            where = (method, path, status)
            if status == "204":
                assert "content" not in response, where
                continue
            if int(status) >= 400:
                schema = response["content"]["application/json"]["schema"]
                assert schema.get("$ref") == "#/components/schemas/Error", where
                continue
            (media_type, content), *_ = response["content"].items()
            if media_type != "application/json":  # a file (a letter's PDF)
                continue
            schema = content["schema"]
            schema = schema.get("items", {}) if schema.get("type") == "array" else schema
            assert schema.get("$ref", "").startswith("#/components/schemas/"), where
    schemas = doc["components"]["schemas"]
    error = schemas["Error"]
    assert sorted(error["required"]) == ["message", "status"]
    assert set(error["properties"]) == {"status", "message", "errors"}
    assert sorted(schemas["ErrorField"]["required"]) == ["message", "path"]
    page = schemas[
        doc["paths"][T + "/invoices"]["get"]["responses"]["200"]["content"]["application/json"][
            "schema"
        ]["$ref"].rsplit("/", 1)[1]
    ]
    assert sorted(page["required"]) == ["items", "next_cursor"]
    assert page["properties"]["items"]["items"]["$ref"].endswith("Invoice")


async def test_every_status_a_route_can_answer_is_declared(client):
    doc = (await client.get("/schema/openapi.json")).json()
    public = {("/health", "get"), ("/api/v1/auth/login", "post")}
    for path, method, operation in _operations(doc):
        declared = set(operation["responses"])
        where = (method, path, sorted(declared))
        if (path, method) in public:
            assert operation["security"] == [], where
            assert "403" not in declared, where
        else:
            assert "security" not in operation, where  # the document's bearer applies
            assert "401" in declared, where
            assert "429" in declared, where
        assert "503" in declared, where
        if "{" in path:
            assert "404" in declared, where
        if "requestBody" in operation:
            assert {"400", "413", "422"} <= declared, where
    assert "401" in doc["paths"]["/api/v1/auth/login"]["post"]["responses"]
    assert "403" not in doc["paths"]["/api/v1/me"]["get"]["responses"]
    for action in ("pause", "resume", "dispute", "resolve"):
        assert "409" in doc["paths"][T + f"/invoices/{{invoice_id}}/{action}"]["post"]["responses"]
    assert "409" in doc["paths"][T + "/payments/{payment_id}/match"]["post"]["responses"]
    assert "409" in doc["paths"]["/api/v1/tenants"]["post"]["responses"]


async def test_codes_and_enums_are_in_the_schema(client):
    from backend.book import STATUSES, TRANSITIONS
    from tenants.access import SCOPES
    from tenants.codes import COUNTRIES, CURRENCIES

    schemas = (await client.get("/schema/openapi.json")).json()["components"]["schemas"]
    tenant_in = schemas["TenantIn"]["properties"]
    assert tenant_in["country"]["enum"] == sorted(COUNTRIES)
    assert tenant_in["currency"]["enum"] == sorted(CURRENCIES)
    assert tenant_in["slug"]["pattern"].startswith("^[a-z0-9]")
    assert schemas["ApiKeyIn"]["properties"]["scopes"]["items"]["enum"] == list(SCOPES)
    assert schemas["ApiKeyIn"]["properties"]["scopes"]["minItems"] == 1
    assert schemas["UserIn"]["properties"]["role"]["enum"] == ["tenant_admin", "tenant_member"]
    assert schemas["Invoice"]["properties"]["status"]["enum"] == list(STATUSES)
    invoice_in = schemas["InvoiceIn"]["properties"]
    assert invoice_in["currency"]["pattern"] == "^[A-Z]{3}$"
    assert invoice_in["amount"]["exclusiveMinimum"] == 0
    assert invoice_in["external_id"]["maxLength"] == 128
    # Every kind of flow change has its timeline entry, told apart by `type`.
    entries = {
        name: schema["properties"]["type"]["const"]
        for name, schema in schemas.items()
        if name.endswith("Entry") and name != "AuditEntry"
    }
    assert set(entries.values()) == set(TRANSITIONS) | {"payment"}


async def test_docs_pages_load_nothing_from_elsewhere(client):
    """The pages name only the server's own files (tests/e2e renders them in a browser)."""
    import re

    for page in ("/schema", "/schema/swagger"):
        html = (await client.get(page)).text
        urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", html)
        assert urls, page
        assert all(u.startswith("/schema/") for u in urls), (page, urls)
        for url in urls:
            assert (await client.get(url)).status_code == 200, url
