"""Onboarding, listing, suspending and offboarding tenants; their users and API keys."""

from __future__ import annotations

import re
from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, JSONBody
from msgspec import Meta, Struct

from backend import offboarding
from backend.api.deps import Cursor, Limit
from backend.api.page import Page
from backend.api.tenant_schemas import (
    SLUG_PATTERN,
    ApiKey,
    AuditEntry,
    Country,
    CreatedApiKey,
    CurrencyCode,
    InvitedUser,
    OnboardedTenant,
    Scope,
    Slug,
    Tenant,
    TenantRole,
    TenantStatus,
    User,
)
from backend.settings import Settings
from backend.validation import SINGLE_LINE, FieldError, InvalidInput
from tenants import audit, onboarding
from tenants.access import SCOPES, Principal
from tenants.codes import COUNTRIES, CURRENCIES
from tenants.pagination import decode_cursor, keyset_page
from tenants.scope import TenantScope
from tenants.tables import ApiKey as ApiKeyRow
from tenants.tables import AuditEntry as AuditRow
from tenants.tables import Tenant as TenantRow
from tenants.tables import User as UserRow

Email = Annotated[
    str,
    Meta(
        min_length=3,
        max_length=254,
        pattern=r"^[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+\.[^@\s\x00-\x1f]+(?!\n)$",
    ),
]
Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=SINGLE_LINE)]
SLUG = re.compile(SLUG_PATTERN)


class TenantIn(Struct, forbid_unknown_fields=True):
    name: Name
    slug: Slug
    country: Country
    currency: CurrencyCode
    admin_email: Email


class TenantPatch(Struct, forbid_unknown_fields=True):
    status: TenantStatus | None = None
    name: Name | None = None


class ApiKeyIn(Struct, forbid_unknown_fields=True):
    name: Name
    scopes: Annotated[list[Scope], Meta(min_length=1, max_length=len(SCOPES))]


class UserIn(Struct, forbid_unknown_fields=True):
    email: Email
    role: TenantRole


class TenantController(Controller):
    path = "/api/v1/tenants"
    tags = ["tenants"]

    @post(
        "/",
        opt={
            "permission": "tenants:create",
            "body": TenantIn,
            "secrets": ("api_key", "admin.password"),
        },
        raises=[onboarding.ConflictError],
        summary="Onboard a client",
    )
    async def onboard(
        self, data: JSONBody[TenantIn], principal: NamedDependency[Principal]
    ) -> OnboardedTenant:
        errors = []
        if not SLUG.fullmatch(data.slug):  # `$` alone would let "x\n" through
            errors.append(FieldError("slug", "lowercase letters, digits and inner hyphens only"))
        if data.country not in COUNTRIES:
            errors.append(FieldError("country", f"unknown ISO 3166 country {data.country!r}"))
        if data.currency not in CURRENCIES:
            errors.append(FieldError("currency", f"unknown currency {data.currency!r}"))
        if errors:
            raise InvalidInput(errors)
        onboarded = await onboarding.onboard(
            name=data.name,
            slug=data.slug,
            country=data.country,
            currency=data.currency,
            admin_email=data.admin_email.lower(),
            actor=principal,
        )
        return msgspec.convert(onboarded, OnboardedTenant)

    @get("/", opt={"permission": "tenants:read"}, summary="List tenants the caller can see")
    async def list_tenants(
        self, principal: NamedDependency[Principal], limit: Limit = 50, cursor: Cursor = None
    ) -> Page[Tenant]:
        query = TenantRow.select().order_by(TenantRow.slug)
        if principal.tenant_id is not None:
            query = query.where(TenantRow.id == principal.tenant_id)
        if cursor is not None:
            (after,) = decode_cursor(cursor, 1)
            query = query.where(TenantRow.slug > after)
        rows, next_cursor = await keyset_page(query, limit, lambda r: (r["slug"],))
        return Page(msgspec.convert(rows, list[Tenant]), next_cursor)

    @get("/{tenant_id:uuid}", opt={"permission": "tenants:read"})
    async def get_tenant(self, tenant_id: FromPath[UUID]) -> Tenant:
        row = await TenantRow.select().where(TenantRow.id == tenant_id).first()
        if row is None:
            raise NotFoundException("tenant not found")
        return msgspec.convert(row, Tenant)

    @patch(
        "/{tenant_id:uuid}",
        opt={"permission": "tenants:manage", "body": TenantPatch},
        summary="Suspend, reactivate or rename",
    )
    async def change_tenant(
        self,
        tenant_id: FromPath[UUID],
        data: JSONBody[TenantPatch],
        principal: NamedDependency[Principal],
    ) -> Tenant:
        changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None}
        await onboarding.change(tenant_id, changes, principal)
        return await self.get_tenant.fn(self, tenant_id)

    @delete(
        "/{tenant_id:uuid}",
        opt={"permission": "tenants:manage"},
        summary="Offboard: erase the tenant and all its data",
    )
    async def offboard(
        self,
        tenant_id: FromPath[UUID],
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
    ) -> None:
        await offboarding.offboard(tenant_id, principal, settings)

    @post(
        "/{tenant_id:uuid}/api-keys",
        opt={"permission": "keys:manage", "body": ApiKeyIn, "secrets": ("key",)},
        summary="Create an API key (shown once)",
    )
    async def create_key(
        self,
        tenant: NamedDependency[TenantScope],
        data: JSONBody[ApiKeyIn],
        principal: NamedDependency[Principal],
    ) -> CreatedApiKey:
        created = await onboarding.create_api_key(tenant, data.name, sorted(set(data.scopes)))
        return msgspec.convert(created, CreatedApiKey)

    @get("/{tenant_id:uuid}/api-keys", opt={"permission": "keys:manage"})
    async def list_keys(self, tenant: NamedDependency[TenantScope]) -> Page[ApiKey]:
        rows = await tenant.select(
            ApiKeyRow,
            ApiKeyRow.id,
            ApiKeyRow.name,
            ApiKeyRow.prefix,
            ApiKeyRow.scopes,
            ApiKeyRow.created_at,
            ApiKeyRow.revoked_at,
            ApiKeyRow.last_used_at,
        ).order_by(ApiKeyRow.created_at)
        for row in rows:
            row["scopes"] = row["scopes"].split(",")
        return Page(msgspec.convert(rows, list[ApiKey]), None)

    @delete(
        "/{tenant_id:uuid}/api-keys/{key_id:uuid}",
        opt={"permission": "keys:manage"},
        summary="Revoke an API key at once",
    )
    async def revoke_key(
        self,
        tenant: NamedDependency[TenantScope],
        key_id: FromPath[UUID],
        principal: NamedDependency[Principal],
    ) -> None:
        await onboarding.revoke_api_key(tenant, key_id)

    @post(
        "/{tenant_id:uuid}/users",
        opt={"permission": "users:manage", "body": UserIn, "secrets": ("password",)},
        raises=[onboarding.ConflictError],
        summary="Invite a user of the tenant (password shown once)",
    )
    async def invite(
        self,
        tenant: NamedDependency[TenantScope],
        data: JSONBody[UserIn],
        principal: NamedDependency[Principal],
    ) -> InvitedUser:
        invited = await onboarding.invite_user(tenant, data.email.lower(), data.role)
        return msgspec.convert(invited, InvitedUser)

    @get("/{tenant_id:uuid}/users", opt={"permission": "users:manage"})
    async def list_users(self, tenant: NamedDependency[TenantScope]) -> Page[User]:
        rows = await tenant.select(
            UserRow,
            UserRow.id,
            UserRow.email,
            UserRow.role,
            UserRow.active,
            UserRow.created_at,
            UserRow.last_login_at,
        ).order_by(UserRow.email)
        return Page(msgspec.convert(rows, list[User]), None)

    @get("/{tenant_id:uuid}/audit", opt={"permission": "read"}, summary="Who changed what, when")
    async def tenant_audit(
        self, tenant: NamedDependency[TenantScope], limit: Limit = 50, cursor: Cursor = None
    ) -> Page[AuditEntry]:
        return msgspec.convert(
            await audit.page(tenant.select(AuditRow), limit, cursor), Page[AuditEntry]
        )


class AgencyAuditController(Controller):
    path = "/api/v1/audit"
    tags = ["audit"]

    @get("/", opt={"permission": "tenants:manage"}, summary="Agency-level audit log")
    async def agency_audit(self, limit: Limit = 50, cursor: Cursor = None) -> Page[AuditEntry]:
        return msgspec.convert(
            await audit.page(audit.agency_entries(), limit, cursor), Page[AuditEntry]
        )
