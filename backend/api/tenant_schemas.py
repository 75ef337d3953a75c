"""What the tenant routes answer (tenants, users, API keys, the audit log) and their codes.

The code lists (ISO 3166 countries, ISO 4217 currencies, key scopes, roles) come from
`tenants/`, where they are enforced, so the published schema cannot drift from the checks.
Countries and currencies stay plain strings to decode (the handler names a bad code in
words); the schema carries them as an enum.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, TypeAlias
from uuid import UUID

from msgspec import Meta, Struct

from tenants.access import AGENCY_ROLES, SCOPES, TENANT_ROLES
from tenants.codes import COUNTRIES, CURRENCIES

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"

# Literal of the tuples `tenants.access` enforces: one list, checked and published.
Scope: TypeAlias = Literal[SCOPES]  # type: ignore[valid-type]
Role: TypeAlias = Literal[AGENCY_ROLES + TENANT_ROLES]  # type: ignore[valid-type]
TenantRole: TypeAlias = Literal[TENANT_ROLES]  # type: ignore[valid-type]
TenantStatus = Literal["active", "suspended"]

Country = Annotated[
    str,
    Meta(
        min_length=2,
        max_length=2,
        extra_json_schema={
            "description": "ISO 3166-1 alpha-2 country code",
            "extra": {"enum": sorted(COUNTRIES)},
        },
    ),
]
CurrencyCode = Annotated[
    str,
    Meta(
        min_length=3,
        max_length=3,
        extra_json_schema={
            "description": "ISO 4217 currency code",
            "extra": {"enum": sorted(CURRENCIES)},
        },
    ),
]
Slug = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=64,
        extra_json_schema={
            "description": "lowercase letters, digits and inner hyphens",
            "extra": {"pattern": SLUG_PATTERN},
        },
    ),
]


# backend.idempotency keeps no secret: a replayed answer carries null where it was shown.
REDACTED = "; null in a replay of this request (same Idempotency-Key): secrets are never stored"


class Tenant(Struct):
    id: UUID
    slug: Slug
    name: str
    country: Country
    currency: CurrencyCode
    status: TenantStatus
    created_at: datetime


class FirstAdmin(Struct):
    id: UUID
    email: str
    password: Annotated[str, Meta(description="shown this once" + REDACTED)] | None


class OnboardedTenant(Tenant):
    """A new tenant with its first admin and default API key, whose secrets are shown once."""

    admin: FirstAdmin
    api_key: Annotated[str, Meta(description="shown this once" + REDACTED)] | None


class ApiKey(Struct):
    id: UUID
    name: str
    prefix: Annotated[str, Meta(description="the key's first characters, to recognise it")]
    scopes: list[Scope]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class CreatedApiKey(Struct):
    id: UUID
    name: str
    prefix: str
    scopes: list[Scope]
    key: Annotated[str, Meta(description="the secret, shown this once" + REDACTED)] | None
    created_at: datetime


class User(Struct):
    id: UUID
    email: str
    role: TenantRole
    active: bool
    created_at: datetime
    last_login_at: datetime | None


class InvitedUser(Struct):
    id: UUID
    email: str
    role: TenantRole
    password: Annotated[str, Meta(description="shown this once" + REDACTED)] | None
    created_at: datetime


class AuditEntry(Struct):
    id: UUID
    actor: Annotated[str, Meta(description="user:<id>, key:<id> or cli")]
    action: Annotated[str, Meta(description="what happened, e.g. tenant.onboarded")]
    object_type: str
    object_id: str | None
    detail: dict[str, Any]
    at: datetime


class Me(Struct):
    kind: Literal["user", "key"]
    id: UUID
    tenant_id: Annotated[UUID | None, Meta(description="null for agency staff")]
    role: Role | None
    scopes: list[Scope]
    email: str | None
    name: str | None
