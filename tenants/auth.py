"""Authentication: `Authorization: Bearer` carries an API key (`kl_…`) or a session JWT.

Both are checked against the database on every request, so a revoked key, a removed user
or a suspended tenant takes effect at once rather than when a token expires. Bad credentials
are counted per address (`tenants.throttle`), and password hashing runs in worker threads, a
few at a time, so logins never stall the event loop that answers everyone else.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.security.jwt import Token
from litestar.types import ASGIApp

from tenants.access import Principal
from tenants.clock import aware
from tenants.credentials import api_key_hash, looks_like_api_key, verify_password_off_loop
from tenants.onboarding import ConflictError
from tenants.tables import ApiKey, Tenant, User
from tenants.throttle import Throttle
from tenants.transactions import write_transaction

JWT_ALGORITHM = "HS256"


# last_used_at is written at most this often per key: a write per request would serialise
# every read behind SQLite's single writer.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def issue_session_token(user_id: UUID, secret: str, ttl_seconds: int) -> str:
    now = datetime.now(UTC)
    token = Token(
        sub=str(user_id), exp=now + timedelta(seconds=ttl_seconds), iat=now, jti=uuid4().hex
    )
    return token.encode(secret=secret, algorithm=JWT_ALGORITHM)


async def login(email: str, password: str) -> dict[str, Any] | None:
    """The user whose password matches, if active, else None (the same cost either way).

    An email is unique per tenant, so one address may hold accounts in several tenants;
    their passwords are generated, so at most one of them matches.
    """
    rows = await User.select().where(User.email == email.strip().lower())
    if not rows:  # no such email: verify against a dummy, so the answer takes as long
        await verify_password_off_loop(None, password)
    matches = [
        row for row in rows if await verify_password_off_loop(row["password_hash"], password)
    ]
    if len(matches) > 1:
        raise ConflictError("this email and password open several accounts; ask the agency")
    row = matches[0] if matches else None
    if row is None or not row["active"]:
        return None
    if row["tenant"] is not None:
        tenant = await Tenant.select(Tenant.status).where(Tenant.id == row["tenant"]).first()
        if tenant is None or tenant["status"] != "active":
            raise PermissionDeniedException("this tenant is suspended")
    async with write_transaction():
        await User.update({User.last_login_at: datetime.now(UTC)}).where(User.id == row["id"])
    return row


class BearerAuthMiddleware(AbstractAuthenticationMiddleware):
    def __init__(
        self, app: ASGIApp, secret: str, failures: Throttle, exclude: list[str] | None = None
    ) -> None:
        super().__init__(app, exclude=exclude, exclude_from_auth_key="public")
        self.secret = secret
        self.failures = failures

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        address = "addr:" + (connection.client.host if connection.client else "unknown")
        await self.failures.check(connection.app, address)
        try:
            return await self._authenticate(connection)
        except NotAuthorizedException:
            await self.failures.hit(connection.app, address)
            raise

    async def _authenticate(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise NotAuthorizedException("missing bearer credentials")
        if looks_like_api_key(token):
            principal = await _principal_for_key(token)
        else:
            principal = await _principal_for_session(token, self.secret)
        return AuthenticationResult(user=principal, auth=token)


async def _tenant_active(tenant_id: UUID) -> None:
    tenant = await Tenant.select(Tenant.status).where(Tenant.id == tenant_id).first()
    if tenant is None:
        raise NotAuthorizedException("invalid credentials")
    if tenant["status"] != "active":
        raise PermissionDeniedException("this tenant is suspended")


async def _principal_for_key(token: str) -> Principal:
    row = await ApiKey.select().where(ApiKey.key_hash == api_key_hash(token)).first()
    if row is None or row["revoked_at"] is not None:
        raise NotAuthorizedException("invalid or revoked API key")
    await _tenant_active(row["tenant"])
    now = datetime.now(UTC)
    last = row["last_used_at"]
    if last is None or now - aware(last) > LAST_USED_RESOLUTION:
        async with write_transaction():
            await ApiKey.update({ApiKey.last_used_at: now}).where(ApiKey.id == row["id"])
    scopes = tuple(s for s in row["scopes"].split(",") if s)
    return Principal.key(row["id"], row["tenant"], scopes, row["name"])


async def _principal_for_session(token: str, secret: str) -> Principal:
    try:
        decoded = Token.decode(token, secret=secret, algorithm=JWT_ALGORITHM)
        user_id = UUID(decoded.sub)
    except Exception as exc:  # any malformed, forged or expired token is the same 401
        raise NotAuthorizedException("invalid or expired session token") from exc
    row = await User.select().where(User.id == user_id).first()
    if row is None or not row["active"]:
        raise NotAuthorizedException("invalid or expired session token")
    if row["tenant"] is not None:
        await _tenant_active(row["tenant"])
    return Principal.user(row["id"], row["tenant"], row["role"], row["email"])
