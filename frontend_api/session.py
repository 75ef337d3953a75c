"""The console's session: the API's own session token, kept in an HttpOnly cookie.

A browser logs in with the same `tenants.auth.login` as `POST /api/v1/auth/login` and gets
the same signed token, checked against the database on every request exactly as the API
checks it (a removed user or suspended tenant is out at once). The cookie is SameSite=Strict
and every state-changing request must also carry the page's CSRF token in a header
(`X-CSRF-Token`, which htmx sends): an HMAC of the session token, so another site can
neither read it nor make a request that carries it.

A request that brings `Authorization: Bearer` instead is authenticated as the API does it
(no CSRF: a header is not ambient), so the security suite walks the console's routes with
the same credentials as the API's.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.middleware import AuthenticationResult

from tenants import auth

COOKIE = "kravlab_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_token(session_token: str, secret: str) -> str:
    return hmac.new(
        secret.encode(), b"console-csrf:" + session_token.encode(), hashlib.sha256
    ).hexdigest()


class ConsoleAuthMiddleware(auth.BearerAuthMiddleware):
    """The API's authentication, with the session cookie as a second way to bring a token."""

    async def _authenticate(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        if connection.headers.get("authorization"):
            return await super()._authenticate(connection)
        token = connection.cookies.get(COOKIE, "")
        if not token:
            raise NotAuthorizedException("log in first")
        principal = await auth._principal_for_session(token, self.secret)
        if dict(connection.scope).get("method", "GET") not in SAFE_METHODS:
            sent = connection.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent, csrf_token(token, self.secret)):
                raise PermissionDeniedException("missing or wrong CSRF token: reload the page")
        return AuthenticationResult(user=principal, auth=token)
