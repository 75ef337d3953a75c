"""Dependencies shared by the controllers: the caller and the tenant scope of the path."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Request
from litestar.params import FromPath, QueryParameter

from tenants.access import Principal
from tenants.scope import TenantScope

MAX_LIMIT = 1000

Limit = Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="page size, default 50")]
Cursor = Annotated[str | None, QueryParameter(max_length=512, description="from next_cursor")]


async def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    return request.user


async def provide_scope(tenant_id: FromPath[UUID], request: Request[Any, Any, Any]) -> TenantScope:
    return await TenantScope.open(tenant_id, request.user)
