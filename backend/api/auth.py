"""Login and who-am-I."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException
from litestar.params import JSONBody
from msgspec import Meta, Struct

from backend.api.tenant_schemas import Me
from backend.settings import Settings
from backend.validation import SINGLE_LINE
from tenants.access import Principal
from tenants.auth import issue_session_token, login
from tenants.throttle import Throttle

# One address may be an office of many people: it gets this many times an account's budget.
LOGIN_ADDRESS_FACTOR = 5


class LoginIn(Struct, forbid_unknown_fields=True):
    email: Annotated[str, Meta(min_length=3, max_length=254, pattern=SINGLE_LINE)]
    password: Annotated[str, Meta(min_length=1, max_length=1024)]


class TokenOut(Struct):
    access_token: str
    token_type: str
    expires_in: int


class AuthController(Controller):
    path = "/api/v1"
    tags = ["auth"]

    @post(
        "/auth/login",
        opt={"public": True, "no_idempotency": True, "body": LoginIn},
        status_code=200,
        raises=[NotAuthorizedException],
        summary="Log in with email and password",
    )
    async def login(
        self,
        data: JSONBody[LoginIn],
        settings: NamedDependency[Settings],
        request: Request[Any, Any, Any],
    ) -> TokenOut:
        # Failures per account and per address, whatever headers come along: a guesser can
        # change its Authorization header, not the account it attacks nor its address.
        account = data.email.strip().lower()
        address = request.client.host if request.client else "unknown"
        limit = settings.login_failures_per_minute
        throttles = (
            (Throttle("login_accounts", limit), account),
            (Throttle("login_addresses", limit * LOGIN_ADDRESS_FACTOR), address),
        )
        for throttle, key in throttles:
            await throttle.check(request.app, key)
        user = await login(data.email, data.password)
        if user is None:
            for throttle, key in throttles:
                await throttle.hit(request.app, key)
            raise NotAuthorizedException("wrong email or password")
        token = issue_session_token(user["id"], settings.secret_key, settings.token_ttl_seconds)
        return TokenOut(token, "bearer", settings.token_ttl_seconds)

    @get("/me", opt={"permission": "me"}, summary="Who the credential is")
    async def me(self, principal: NamedDependency[Principal]) -> Me:
        return msgspec.convert(principal, Me, from_attributes=True)
