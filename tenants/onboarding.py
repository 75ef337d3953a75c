"""Onboarding and offboarding clients, their users and their API keys.

Each function is one transaction that also writes its audit entry, so a change and its
record land together or not at all.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from litestar.exceptions import ClientException, NotFoundException

from tenants import audit, clock
from tenants.access import Principal
from tenants.credentials import (
    api_key_hash,
    generate_api_key,
    generate_password,
    hash_password_off_loop,
)
from tenants.scope import TenantScope
from tenants.tables import ApiKey, Tenant, User
from tenants.transactions import write_transaction

# Tables outside tenants/ that hold per-tenant rows without a foreign key (so no cascade):
# offboarding clears them by owner id. backend registers its own at import.
UNOWNED_TENANT_ROWS: list[Any] = []


class ConflictError(ClientException):
    status_code = 409


async def onboard(
    *, name: str, slug: str, country: str, currency: str, admin_email: str, actor: Principal
) -> dict[str, Any]:
    """A new tenant with its first admin and an API key; the secrets are returned this once."""
    tenant_id, admin_id, key_id = uuid4(), uuid4(), uuid4()
    password, key = generate_password(), generate_api_key()
    password_hash = await hash_password_off_loop(password)
    async with write_transaction():
        if await Tenant.exists().where(Tenant.slug == slug):
            raise ConflictError(f"a tenant with slug {slug!r} exists")
        now = clock.now()
        await Tenant.insert(
            Tenant(
                id=tenant_id,
                name=name,
                slug=slug,
                country=country,
                currency=currency,
                status="active",
                created_at=now,
            )
        )
        await User.insert(
            User(
                id=admin_id,
                tenant=tenant_id,
                email=admin_email,
                password_hash=password_hash,
                role="tenant_admin",
                active=True,
                created_at=now,
            )
        )
        await ApiKey.insert(
            ApiKey(
                id=key_id,
                tenant=tenant_id,
                name="default",
                prefix=key[:10],
                key_hash=api_key_hash(key),
                scopes="invoices:write,payments:write,read",
                created_at=now,
            )
        )
        await audit.record(actor.actor, "tenant.onboarded", "tenant", tenant_id, None, slug=slug)
        await audit.record(
            actor.actor, "tenant.onboarded", "tenant", tenant_id, tenant_id, slug=slug
        )
    return {
        "id": tenant_id,
        "slug": slug,
        "name": name,
        "country": country,
        "currency": currency,
        "status": "active",
        "created_at": now,
        "admin": {"id": admin_id, "email": admin_email, "password": password},
        "api_key": key,
    }


async def change(tenant_id: UUID, changes: dict[str, Any], actor: Principal) -> None:
    async with write_transaction():
        if not await Tenant.exists().where(Tenant.id == tenant_id):
            raise NotFoundException("tenant not found")
        if changes:
            await Tenant.update({getattr(Tenant, k): v for k, v in changes.items()}).where(
                Tenant.id == tenant_id
            )
            await audit.record(
                actor.actor, "tenant.changed", "tenant", tenant_id, tenant_id, **changes
            )


async def offboard(tenant_id: UUID, actor: Principal) -> None:
    """Erase the tenant and every row it owns (foreign keys cascade; the rest by owner)."""
    async with write_transaction():
        row = await Tenant.select(Tenant.slug).where(Tenant.id == tenant_id).first()
        if row is None:
            raise NotFoundException("tenant not found")
        for column in UNOWNED_TENANT_ROWS:
            await column._meta.table.delete().where(column == str(tenant_id))
        await Tenant.delete().where(Tenant.id == tenant_id)
        await audit.record(
            actor.actor, "tenant.offboarded", "tenant", tenant_id, None, slug=row["slug"]
        )


async def invite_user(scope: TenantScope, email: str, role: str) -> dict[str, Any]:
    password = generate_password()
    password_hash = await hash_password_off_loop(password)
    user_id = uuid4()
    async with write_transaction():
        # Only this tenant's users are looked at: whether another tenant (or the agency) has
        # this address is none of this tenant's business.
        if await scope.count(User).where(User.email == email):
            raise ConflictError(f"{email!r} is already a user of this tenant")
        now = clock.now()
        await scope.insert(
            User,
            {
                "id": user_id,
                "email": email,
                "password_hash": password_hash,
                "role": role,
                "active": True,
                "created_at": now,
            },
        )
        await scope.audit("user.invited", "user", user_id, email=email, role=role)
    return {"id": user_id, "email": email, "role": role, "password": password, "created_at": now}


async def is_active_agency_user(user_id: UUID) -> bool:
    """Whether this id is an active member of the agency's staff (who may be given work)."""
    return await User.exists().where(
        (User.id == user_id) & User.tenant.is_null() & (User.active == True)  # noqa: E712
    )


async def agency_user_exists(email: str) -> bool:
    return await User.exists().where((User.email == email) & User.tenant.is_null())


async def create_agency_user(email: str, password: str, role: str) -> UUID:
    """For the CLI: the first agency admin (or more agency staff)."""
    user_id = uuid4()
    password_hash = await hash_password_off_loop(password)
    async with write_transaction():
        if await User.exists().where((User.email == email) & User.tenant.is_null()):
            raise ConflictError(f"an agency user with email {email!r} exists")
        await User.insert(
            User(
                id=user_id,
                tenant=None,
                email=email,
                password_hash=password_hash,
                role=role,
                active=True,
                created_at=clock.now(),
            )
        )
        await audit.record("cli", "user.created", "user", user_id, None, email=email, role=role)
    return user_id


async def create_api_key(scope: TenantScope, name: str, scopes: list[str]) -> dict[str, Any]:
    key_id, key = uuid4(), generate_api_key()
    now = clock.now()
    async with write_transaction():
        await scope.insert(
            ApiKey,
            {
                "id": key_id,
                "name": name,
                "prefix": key[:10],
                "key_hash": api_key_hash(key),
                "scopes": ",".join(scopes),
                "created_at": now,
            },
        )
        await scope.audit("api_key.created", "api_key", key_id, name=name, scopes=scopes)
    return {
        "id": key_id,
        "name": name,
        "prefix": key[:10],
        "scopes": scopes,
        "key": key,
        "created_at": now,
    }


async def revoke_api_key(scope: TenantScope, key_id: UUID) -> None:
    async with write_transaction():
        row = await scope.get(ApiKey, key_id, ApiKey.revoked_at)
        if row["revoked_at"] is None:
            await scope.update(ApiKey, {ApiKey.revoked_at: clock.now()}).where(ApiKey.id == key_id)
            await scope.audit("api_key.revoked", "api_key", key_id)
