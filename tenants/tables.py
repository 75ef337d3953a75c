"""The tables of tenancy and access.

Users with no tenant are agency staff; every other row belongs to exactly one tenant and
goes when the tenant is offboarded (ON DELETE CASCADE, so nothing can be left behind).
"""

from __future__ import annotations

from piccolo.columns import (
    UUID,
    Boolean,
    ForeignKey,
    OnDelete,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.table import Table


class Tenant(Table, tablename="tenants"):
    id = UUID(primary_key=True)
    name = Varchar(length=200)
    slug = Varchar(length=64, unique=True)
    country = Varchar(length=2)
    currency = Varchar(length=3)
    status = Varchar(length=16, default="active")
    created_at = Timestamptz()


class User(Table, tablename="users"):
    id = UUID(primary_key=True)
    tenant = ForeignKey(Tenant, null=True, on_delete=OnDelete.cascade, index=True)
    # Unique per tenant and among agency staff (partial unique indexes in the migrations),
    # not across tenants: a tenant must not learn another tenant's users from a 409.
    email = Varchar(length=254)
    password_hash = Text()
    role = Varchar(length=32)
    active = Boolean(default=True)
    created_at = Timestamptz()
    last_login_at = Timestamptz(null=True, default=None)


class ApiKey(Table, tablename="api_keys"):
    id = UUID(primary_key=True)
    tenant = ForeignKey(Tenant, null=False, on_delete=OnDelete.cascade, index=True)
    name = Varchar(length=200)
    # The first characters of the key, shown in listings so people can tell keys apart.
    prefix = Varchar(length=16)
    key_hash = Varchar(length=64, unique=True)
    scopes = Text()
    created_at = Timestamptz()
    revoked_at = Timestamptz(null=True, default=None)
    last_used_at = Timestamptz(null=True, default=None)


class AuditEntry(Table, tablename="audit_log"):
    """Who changed what, when. Kept with the tenancy tables so every room can write it."""

    id = UUID(primary_key=True)
    # Null for agency-level entries (tenant onboarded, offboarded).
    tenant = ForeignKey(Tenant, null=True, default=None, on_delete=OnDelete.cascade, index=True)
    actor = Varchar(length=80)
    action = Varchar(length=64)
    object_type = Varchar(length=32)
    object_id = Varchar(length=64, null=True, default=None)
    detail = Text(default="{}")
    at = Timestamptz(index=True)
