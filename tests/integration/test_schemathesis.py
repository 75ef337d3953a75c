"""Schemathesis against the app's own OpenAPI document, on a live server.

Every operation is called with generated requests, valid and invalid, once as an agency admin
and once with the tenant's API key. Each answer must be no server error, carry a documented
status and content type, and match the documented schema; invalid input must be refused.
Generated ids in the path are swapped for real ones (a tenant, its invoices and payments)
so the calls reach rows rather than only 404s; offboarding and suspending go to a tenant
of their own so the rest keep a live one.
"""

from __future__ import annotations

import copy
import os
import uuid
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.server import LiveServer
from tests.support.world import TenantHandle, agency_user, invoice, onboard, payment

# Examples per operation and credential; the whole module stays within a few minutes.
EXAMPLES = int(os.environ.get("KRAVLAB_FUZZ_EXAMPLES", "25"))

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# Not run: positive_data_acceptance. Business rules the schema cannot state (a batch in the
# tenant's own currency, due_date on or after issue_date, unique external ids in a batch)
# rightly refuse some schema-valid requests with 422.


@dataclass
class World:
    url: str
    credentials: dict[str, str]  # Authorization header values
    tenant: TenantHandle
    spare: TenantHandle  # suspended and offboarded by the fuzzer, so `tenant` stays usable
    invoice_ids: list[str]
    payment_ids: list[str]


@pytest.fixture(scope="module")
def fuzz_server(migrated: None) -> Iterator[LiveServer]:
    # Limits high enough that the run tests the routes, not only the 429s.
    live = LiveServer(
        KRAVLAB_RATE_LIMIT_PER_MINUTE="1000000", KRAVLAB_LOGIN_FAILURES_PER_MINUTE="1000000"
    ).start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
async def world(fuzz_server: LiveServer) -> World:
    async with httpx.AsyncClient(base_url=fuzz_server.url, timeout=60) as http:
        admin = await agency_user(http)
        tenant = await onboard(http, admin)
        spare = await onboard(http, admin)
        rows = [invoice(f"F-{i}", amount=10_000 * (i + 1)) for i in range(4)]
        r = await http.post(tenant.path("/invoices/batch"), json={"invoices": rows}, headers=admin)
        assert r.status_code == 200, r.text
        pays = [
            payment("P-0", 5_000, invoice_external_id="F-0"),
            payment("P-1", 7_000, reference="nobody"),
        ]
        r = await http.post(tenant.path("/payments/batch"), json={"payments": pays}, headers=admin)
        assert r.status_code == 200, r.text
        invoices = (await http.get(tenant.path("/invoices"), headers=admin)).json()["items"]
        payments = (await http.get(tenant.path("/payments"), headers=admin)).json()["items"]
    return World(
        fuzz_server.url,
        {"agency_admin": admin["Authorization"], "api_key": tenant.key["Authorization"]},
        tenant,
        spare,
        [i["id"] for i in invoices],
        [p["id"] for p in payments],
    )


@pytest.fixture(scope="module")
def api_schema(fuzz_server: LiveServer) -> Any:
    """The document as the live server publishes it."""
    return schemathesis.openapi.from_url(fuzz_server.url + "/schema/openapi.json")


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _point_at_real_rows(case: Any, world: World, always: bool = False) -> None:
    """Swap well-formed generated ids for real ones; malformed ids stay, to be refused."""
    params = case.path_parameters or {}
    mutating_tenant = case.method.upper() in ("PATCH", "DELETE") and case.path.endswith(
        "{tenant_id}"
    )
    picks = {
        "tenant_id": [world.spare.id if mutating_tenant else world.tenant.id],
        "invoice_id": world.invoice_ids,
        "payment_id": world.payment_ids,
    }
    for name, ids in picks.items():
        if name in params and _is_uuid(params[name]) and ids:
            # Some generated ids stay unknown, to see the 404s too.
            choice = int(uuid.UUID(str(params[name]))) % (len(ids) + (0 if always else 1))
            if choice < len(ids):
                params[name] = ids[choice]


def _sign(case: Any, credential: str) -> None:
    """Put a real credential where the case carries one; a case whose headers are the
    invalid part (the Authorization left out or mangled) keeps them, to be refused."""
    if case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER):
        return
    if case.headers is not None and "Authorization" in case.headers:
        case.headers["Authorization"] = credential


def _fuzz(operation: Any, mode: GenerationMode, world: World, seen: Counter[int]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: bounded time, raw example
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        _point_at_real_rows(case, world)
        for credential in world.credentials.values():
            _sign(case, credential)
            response = case.call_and_validate(base_url=world.url, checks=CHECKS)
            seen[response.status_code] += 1

    run()


def test_every_answer_is_documented(api_schema: Any, world: World) -> None:
    failures = []
    seen: Counter[int] = Counter()
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, world, seen)
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # no input at all: nothing to get wrong
            except (Exception, BaseExceptionGroup) as exc:  # Schemathesis's FailureGroup
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)
    # The run reached the routes' work, not only their refusals.
    assert {200, 201, 204, 401, 403, 404, 422} <= set(seen), seen


# Text a generator rarely produces that has crashed the service before (issue 11, finding 4:
# PostgreSQL refuses NUL in text, and a driver error there was a 500).
HOSTILE_TEXT = "a\x00b"
# Cases found failing and left to their files' owners, per engine: (operation, where) ->
# what to fix. Only these may fail; one that passes again is reported to be struck off.
KNOWN: dict[str, dict[tuple[str, str], str]] = {}
MAX_LEAVES = 12  # body fields tried per operation, so a batch body stays a few requests


def _text_leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _text_leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _text_leaves(item, (*path, index))


def _with_leaf(body: Any, path: tuple[Any, ...], text: str) -> Any:
    body = copy.deepcopy(body)
    target = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = text
    return body


def _hostile_variants(case: Any) -> Iterator[tuple[str, Any]]:
    """The case with hostile text in one place at a time: each text query parameter the
    operation takes, then the body's text fields."""
    for parameter in case.operation.definition.raw.get("parameters", []):
        schema = parameter.get("schema", {})
        texts = [schema, *schema.get("oneOf", [])]
        if parameter["in"] == "query" and any(s.get("type") == "string" for s in texts):
            yield (
                f"query.{parameter['name']}",
                case.derive(query={**case.query, parameter["name"]: HOSTILE_TEXT}, keep_auth=True),
            )
    for path in list(_text_leaves(case.body))[:MAX_LEAVES]:
        variant = case.derive(keep_auth=True)
        variant.body = _with_leaf(case.body, path, HOSTILE_TEXT)
        yield "body" + "".join(f"[{step!r}]" for step in path), variant


def test_hostile_text_is_refused_not_crashed(api_schema: Any, world: World) -> None:
    failures: dict[tuple[str, str], str] = {}
    tried = 0
    for operation in [result.ok() for result in api_schema.get_all_operations()]:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=1,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            nonlocal tried
            _point_at_real_rows(case, world, always=True)
            _sign(case, world.credentials["agency_admin"])
            for where, variant in _hostile_variants(case):
                tried += 1
                try:
                    variant.call_and_validate(base_url=world.url, checks=CHECKS[:-1])
                except (Exception, BaseExceptionGroup) as exc:
                    failures[(case.operation.label, where)] = str(exc)

        run()
    assert tried >= 20  # the operations' text fields were reached
    known = KNOWN.get(os.environ.get("KRAVLAB_TEST_DB", "sqlite"), {})
    unexpected = {k: v for k, v in failures.items() if k not in known}
    assert not unexpected, "\n\n".join(f"{k}: {v}" for k, v in unexpected.items())
    fixed = sorted(set(known) - set(failures))
    if fixed:
        warnings.warn(f"fixed, strike off KNOWN: {fixed}", stacklevel=1)
