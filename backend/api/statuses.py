"""Every status a route can answer, declared on the route, and the one shape of every error.

The statuses follow from what a route is, so they are derived in one place rather than
listed by hand on each handler (where they drift): a route behind the bearer middleware
can answer 401, one whose permission not every credential holds 403, one with a path id
404, one with input 400 and 422, one with a body 413, every POST 409 and 422 through its
Idempotency-Key, everything but `/health` 429, and every route 503 while the database is
down. What a handler raises beyond that (a state conflict) it says with Litestar's
`raises=`, which is rendered in the same error shape.
Public routes (`opt={"public": True}`) declare `security: []` so a client knows it may
call them without a credential.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar.exceptions import HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIType, Operation, Parameter, Schema
from litestar.plugins import ReceiveRoutePlugin
from litestar.routes import BaseRoute, HTTPRoute
from msgspec import UNSET, Meta, Struct, UnsetType

from backend.idempotency import MAX_KEY_LENGTH

# Paths the rate limiter does not count (app.py excludes the same).
UNLIMITED = ("/health", "/schema")
# Permissions every credential holds, so a route asking only for them never answers 403.
GRANTED_TO_ALL = frozenset({"me"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH"})


class ErrorField(Struct):
    path: Annotated[str, Meta(description="where in the body or query, e.g. invoices[17].due_date")]
    message: str


class Error(Struct, omit_defaults=True):
    """What every error answers; `errors` lists each bad field of a 422."""

    status: Annotated[int, Meta(ge=400, le=599, description="the HTTP status, repeated")]
    message: str
    errors: list[ErrorField] | UnsetType = UNSET


WHY = {
    400: "Malformed request: JSON that does not parse, a body that is not UTF-8, a bad "
    "Idempotency-Key",
    401: "No credential, or one that is not valid (expired, revoked, unknown)",
    403: "The credential may not do this, or its tenant is suspended",
    404: "No such object, or it belongs to a tenant the credential cannot reach",
    409: "Conflicts with the object's state, or a request with this Idempotency-Key is in flight",
    413: "The request body exceeds the size limit",
    422: "Invalid input: `errors` names every bad field, or the Idempotency-Key was used "
    "for another request",
    429: "Rate limit used up: retry after the Retry-After header's seconds",
    503: "The database is unavailable: retry shortly",
}


def error_response(status: int, why: str | None = None) -> ResponseSpec:
    """The error shape for `status`, described as WHY says or as `why` says for one route."""
    return ResponseSpec(
        data_container=Error, description=why or WHY.get(status, "Error"), generate_examples=False
    )


@dataclass
class PublicOperation(Operation):
    """An operation that needs no credential: `security: []` overrides the document's default."""

    def __post_init__(self) -> None:
        self.security = []


IDEMPOTENCY_KEY = Parameter(
    name="Idempotency-Key",
    param_in="header",
    required=False,
    description="Retry safely: the same key with the same request replays the first answer "
    "to the same credential (kept 48 hours by default); with another request it is a 422.",
    schema=Schema(
        type=OpenAPIType.STRING,
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        pattern=r"^[^\x00-\x1f\x7f]+$",
    ),
)


@dataclass
class IdempotentOperation(Operation):
    """A POST that takes an `Idempotency-Key` header (backend/idempotency.py)."""

    def __post_init__(self) -> None:
        self.parameters = [*(self.parameters or []), IDEMPOTENCY_KEY]


def _idempotent(handler: HTTPRouteHandler, method: str) -> bool:
    return method == "POST" and not handler.opt.get("no_idempotency")


def statuses_for(
    handler: HTTPRouteHandler, method: str, path: str, *, path_ids: bool, query: bool
) -> set[int]:
    """The error statuses `handler` can answer for `method` on `path`."""
    public = bool(handler.opt.get("public"))
    body = handler.opt.get("body") is not None or "data" in handler.parsed_fn_signature.parameters
    statuses: set[int] = set()
    if not public:
        statuses.add(401)
        if handler.opt.get("permission") not in GRANTED_TO_ALL:
            statuses.add(403)
    if path_ids:
        statuses.add(404)
    if body or query or path_ids:
        statuses.update((400, 422))
    if method in WRITE_METHODS:
        statuses.add(413)
    if _idempotent(handler, method):
        statuses.update((400, 409, 422))
    if not path.startswith(UNLIMITED):
        statuses.add(429)
    statuses.add(503)  # every route reads the database, the credential's check at least
    for exc in handler.raises or ():
        if isinstance(exc, type) and issubclass(exc, HTTPException):
            statuses.add(exc.status_code)
    return statuses


class DocumentedStatuses(ReceiveRoutePlugin):
    """Declares `responses=` on every route as it is registered (see the module docstring)."""

    def receive_route(self, route: BaseRoute) -> None:
        if not isinstance(route, HTTPRoute) or route.path.startswith("/schema"):
            return
        for method, (handler, kwargs) in route.route_handler_map.items():
            statuses = statuses_for(
                handler,
                method,
                route.path,
                path_ids=bool(route.path_parameters),
                query=bool(kwargs.expected_query_params),
            )
            declared: dict[int, Any] = {s: error_response(s) for s in sorted(statuses)}
            handler.responses = {**declared, **(handler.responses or {})}
            # Litestar would add its own shape for these ({status_code, detail, extra}).
            handler.raises = None
            if handler.opt.get("public"):
                if _idempotent(handler, method):
                    raise TypeError(f"{route.path}: a public idempotent POST is not documented")
                handler.operation_class = PublicOperation
            elif _idempotent(handler, method):
                handler.operation_class = IdempotentOperation
