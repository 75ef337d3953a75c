"""Login and who-am-I."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException
from litestar.params import JSONBody
from msgspec import Meta, Struct

from backend.api.tenant_schemas import Me
from backend.settings import Settings
from tenants.access import Principal
from tenants.auth import issue_session_token, login


class LoginIn(Struct, forbid_unknown_fields=True):
    email: Annotated[str, Meta(min_length=3, max_length=254)]
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
    async def login(self, data: JSONBody[LoginIn], settings: NamedDependency[Settings]) -> TokenOut:
        user = await login(data.email, data.password)
        if user is None:
            raise NotAuthorizedException("wrong email or password")
        token = issue_session_token(user["id"], settings.secret_key, settings.token_ttl_seconds)
        return TokenOut(token, "bearer", settings.token_ttl_seconds)

    @get("/me", opt={"permission": "me"}, summary="Who the credential is")
    async def me(self, principal: NamedDependency[Principal]) -> Me:
        return msgspec.convert(principal, Me, from_attributes=True)
