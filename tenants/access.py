"""Roles, API key scopes and the permissions they grant.

Every route declares the one permission it needs (`opt={"permission": ...}`); one guard,
`authorize`, checks it. The security suite reads the same declarations from the route
table, so a new route is covered the day it is added.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from litestar.connection import ASGIConnection
from litestar.exceptions import NotFoundException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

AGENCY_ROLES = ("agency_admin", "agency_staff")
TENANT_ROLES = ("tenant_admin", "tenant_member")
SCOPES = ("invoices:write", "payments:write", "policies:write", "simulations:write", "read")

# Permissions a route may ask for.
PERMISSIONS = (
    "me",  # any valid credential
    "tenants:create",
    "tenants:read",
    "tenants:manage",  # suspend, rename, offboard
    "keys:manage",
    "users:manage",
    "read",  # the tenant's invoice book, payments, audit log
    "invoices:write",  # batch ingest
    "invoices:manage",  # pause, resume, dispute, resolve
    "payments:write",  # batch ingest
    "payments:match",  # work the unmatched queue
    "rates:manage",  # add a half-year's reference rate (agency_admin only)
    "policies:write",  # draft policies and versions (drafts change nothing live)
    "policies:activate",  # a version goes live or is retired: people, not integrations
    "dunning:run",  # run the live policies now
    "profile:manage",  # how letters name the tenant: payment instructions, dispute contact
    "webhooks:manage",  # where the tenant's events are sent, with the secret that signs them
    "cases:work",  # the agency's collection work: assign, note, close cases
    "simulations:run",  # queue or cancel what-if simulations, refit the behaviour model
    "portfolio:simulate",  # forecast every client's live policies (agency only)
    "imports:write",  # load a payment history (POST /imports): invoices, payments, contacts
    "portfolio:read",  # the agency's figures across every client (the console's portfolio)
)

ROLE_GRANTS: dict[str, frozenset[str]] = {
    "agency_admin": frozenset(PERMISSIONS),
    "agency_staff": frozenset(
        {
            "me",
            "tenants:read",
            "read",
            "invoices:manage",
            "payments:match",
            "dunning:run",
            "cases:work",
            "simulations:run",
            "portfolio:simulate",
            "imports:write",
            "portfolio:read",
        }
    ),
    "tenant_admin": frozenset(
        {
            "me",
            "tenants:read",
            "read",
            "invoices:write",
            "invoices:manage",
            "payments:write",
            "payments:match",
            "keys:manage",
            "users:manage",
            "policies:write",
            "policies:activate",
            "dunning:run",
            "profile:manage",
            "webhooks:manage",
            "simulations:run",
            "imports:write",
        }
    ),
    "tenant_member": frozenset(
        {
            "me",
            "tenants:read",
            "read",
            "invoices:manage",
            "payments:match",
            "policies:write",
            "simulations:run",
        }
    ),
}

SCOPE_GRANTS: dict[str, frozenset[str]] = {
    "read": frozenset({"tenants:read", "read"}),
    # A history import writes invoices with their payments: a key that may push invoices.
    "invoices:write": frozenset({"invoices:write", "invoices:manage", "imports:write"}),
    "payments:write": frozenset({"payments:write", "payments:match"}),
    "policies:write": frozenset({"policies:write"}),
    "simulations:write": frozenset({"simulations:run"}),
}


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (with a role) or an API key (with scopes)."""

    kind: str  # "user" or "key"
    id: UUID
    tenant_id: UUID | None  # None: agency staff, who reach every tenant
    role: str | None = None
    scopes: tuple[str, ...] = ()
    email: str | None = None
    name: str | None = None
    grants: frozenset[str] = field(default=frozenset(), repr=False)

    @classmethod
    def user(cls, id: UUID, tenant_id: UUID | None, role: str, email: str) -> Principal:
        return cls("user", id, tenant_id, role=role, email=email, grants=ROLE_GRANTS[role])

    @classmethod
    def key(cls, id: UUID, tenant_id: UUID, scopes: tuple[str, ...], name: str) -> Principal:
        grants = frozenset({"me"}).union(*(SCOPE_GRANTS[s] for s in scopes))
        return cls("key", id, tenant_id, scopes=scopes, name=name, grants=grants)

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"{self.kind}:{self.id}"

    def may(self, permission: str) -> bool:
        return permission in self.grants

    def reaches(self, tenant_id: UUID) -> bool:
        return self.tenant_id is None or self.tenant_id == tenant_id


def authorize(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """The one guard: another tenant's objects are missing (404), then the permission (403)."""
    permission = handler.opt.get("permission")
    if permission not in PERMISSIONS:
        raise PermissionDeniedException("route declares no known permission")
    principal: Principal = connection.user
    tenant_id = connection.path_params.get("tenant_id")
    if tenant_id is not None and not principal.reaches(tenant_id):
        raise NotFoundException("not found")
    if not principal.may(permission):
        raise PermissionDeniedException(f"this credential may not {permission}")
