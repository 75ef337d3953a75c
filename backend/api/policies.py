"""A tenant's credit policies and their versions (API.md: "Policies, the dunning run")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, PathParameter
from msgspec import Meta, Struct

from backend import policies
from backend.api.deps import Cursor, Limit
from backend.api.page import Page
from backend.validation import MULTI_LINE
from tenants.scope import TenantScope

PolicyDocument = Annotated[
    dict[str, Any],
    Meta(
        description="a credit policy (formats §2: name, segment, steps, escalate_after_days, "
        "interest, payment_plans, compensation); every rule violation is answered with its "
        "path, e.g. policy.steps[1].fee"
    ),
]


class PolicyIn(Struct, forbid_unknown_fields=True):
    policy: PolicyDocument


class ActivateIn(Struct, forbid_unknown_fields=True):
    override_reason: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=1000,
                pattern=MULTI_LINE,
                description="agency_admin only: go live although a gate refuses; audited",
            ),
        ]
        | None
    ) = None


class PolicyVersionOut(Struct):
    number: Annotated[int, Meta(ge=1)]
    status: Literal["draft", "live", "retired"]
    policy: PolicyDocument
    created_at: datetime
    created_by: str
    activated_at: datetime | None
    activated_by: str | None
    retired_at: datetime | None


class VersionOut(PolicyVersionOut):
    policy_id: UUID
    simulation: (
        Annotated[
            dict[str, Any],
            Meta(
                description="on activation: the simulation that let it through (simulation_id, "
                "candidate, recovery, delta against the live set)"
            ),
        ]
        | None
    ) = None


class PolicyOut(Struct):
    id: UUID
    name: str
    created_at: datetime
    live_version: int | None
    versions: list[PolicyVersionOut]


class PolicySummary(Struct):
    id: UUID
    name: str
    created_at: datetime
    live_version: int | None


Number = Annotated[int, PathParameter(ge=1, le=2_147_483_647)]


class PolicyController(Controller):
    path = "/api/v1/tenants/{tenant_id:uuid}/policies"
    tags = ["policies"]

    @post(
        "/",
        opt={"permission": "policies:write", "body": PolicyIn},
        summary="A new policy; its version 1 is a draft",
    )
    async def create_policy(
        self, tenant: NamedDependency[TenantScope], data: JSONBody[PolicyIn]
    ) -> PolicyOut:
        return msgspec.convert(await policies.create(tenant, data.policy), PolicyOut)

    @get("/", opt={"permission": "read"}, summary="The tenant's policies")
    async def list_policies(
        self, tenant: NamedDependency[TenantScope], limit: Limit = 50, cursor: Cursor = None
    ) -> Page[PolicySummary]:
        items, next_cursor = await policies.page(tenant, limit, cursor)
        return Page(msgspec.convert(items, list[PolicySummary]), next_cursor)

    @get("/{policy_id:uuid}", opt={"permission": "read"}, summary="A policy and its versions")
    async def get_policy(
        self, tenant: NamedDependency[TenantScope], policy_id: FromPath[UUID]
    ) -> PolicyOut:
        return msgspec.convert(await policies.get(tenant, policy_id), PolicyOut)

    @post(
        "/{policy_id:uuid}/versions",
        opt={"permission": "policies:write", "body": PolicyIn},
        summary="A new draft version (the live one is never changed in place)",
    )
    async def add_version(
        self,
        tenant: NamedDependency[TenantScope],
        policy_id: FromPath[UUID],
        data: JSONBody[PolicyIn],
    ) -> VersionOut:
        return msgspec.convert(
            await policies.add_version(tenant, policy_id, data.policy), VersionOut
        )

    @post(
        "/{policy_id:uuid}/versions/{number:int}/activate",
        status_code=200,
        opt={"permission": "policies:activate", "body": ActivateIn},
        raises=[policies.PolicyConflict],
        summary="Make a draft live; the previous live version of its policy or segment retires",
    )
    async def activate(
        self,
        tenant: NamedDependency[TenantScope],
        policy_id: FromPath[UUID],
        number: Number,
        data: JSONBody[ActivateIn | None] = None,
    ) -> VersionOut:
        reason = data.override_reason if data else None
        activated = await policies.activate(tenant, policy_id, number, reason)
        return msgspec.convert(activated, VersionOut)

    @post(
        "/{policy_id:uuid}/versions/{number:int}/retire",
        status_code=200,
        opt={"permission": "policies:activate"},
        raises=[policies.PolicyConflict],
        summary="Stop a live version, or withdraw a draft",
    )
    async def retire(
        self,
        tenant: NamedDependency[TenantScope],
        policy_id: FromPath[UUID],
        number: Number,
    ) -> VersionOut:
        return msgspec.convert(await policies.retire(tenant, policy_id, number), VersionOut)
