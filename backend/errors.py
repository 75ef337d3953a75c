"""Every error is JSON `{status, message}`, and validation errors add `errors: [{path, message}]`.

Litestar's own body decoding stops at the first bad field. Routes that declare their body
struct (`opt={"body": Struct}`) are checked first by `check_body`, a before-request hook
that answers 422 with every bad field, schema and business rules together (400 for a body
that is not JSON: bad syntax, not UTF-8, nested too deeply), before Litestar decodes. It
also refuses control characters in any query parameter, whatever its declared type.

An answer lists at most `MAX_LISTED_ERRORS` errors, in row order; when there are more,
the last entry (path `$`) says how many were left out. A 10 000-row batch with every row
wrong is still a short answer, and the first rows' errors are the ones to fix first.
A 500 is logged with its traceback and says nothing about internals.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.utils.scope.state import ScopeState

from backend.validation import (
    FieldError,
    InvalidBody,
    InvalidInput,
    MalformedBody,
    decode_body,
)
from tenants.pagination import BadCursor
from tenants.scope import TenantScope

log = structlog.get_logger("kravlab")

MAX_LISTED_ERRORS = 100
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ROW = re.compile(r"^([^\[.]*)\[(\d+)\]")


def _row_order(error: FieldError) -> tuple[int, str, int]:
    """Errors of the body as a whole first, then row by row (`invoices[2]` before `[10]`)."""
    found = _ROW.match(error.path)
    return (1, found.group(1), int(found.group(2))) if found else (0, "", 0)


def _body(status: int, message: str, errors: list[FieldError] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status, "message": message}
    if errors is not None:
        listed = sorted(errors, key=_row_order)
        if len(listed) > MAX_LISTED_ERRORS:
            rest = len(listed) - MAX_LISTED_ERRORS
            listed = [
                *listed[:MAX_LISTED_ERRORS],
                FieldError("$", f"{rest} more errors not listed ({len(errors)} in all)"),
            ]
        body["errors"] = [{"path": e.path, "message": e.message} for e in listed]
    return body


def _response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Response[Any]:
    return Response(content=body, status_code=status, media_type=MediaType.JSON, headers=headers)


def invalid_input(_: Request[Any, Any, Any], exc: InvalidInput) -> Response[Any]:
    return _response(422, _body(422, exc.detail, exc.errors))


async def check_body(request: Request[Any, Any, Any]) -> Response[Any] | None:
    bad_query = [
        FieldError(name, "must not contain control characters")
        for name, value in request.query_params.multi_items()
        if _CONTROL.search(name) or _CONTROL.search(value)
    ]
    if bad_query:
        return _response(422, _body(422, "invalid query", bad_query))
    struct = request.route_handler.opt.get("body")
    if struct is None or request.method not in BODY_METHODS:
        return None
    raw = await request.body()
    if not raw.strip() and not _body_required(struct):
        return None
    try:
        decoded = decode_body(raw, struct)
    except MalformedBody as exc:
        return _response(400, _body(400, str(exc)))
    except InvalidBody as exc:
        errors = exc.errors + await _rule_errors(request, struct, exc.partial)
        return _response(422, _body(422, exc.detail, errors))
    # Litestar would decode the body again (to builtins, then convert, and leniently: "100"
    # would pass as 100). Handing it the strictly decoded struct as the request's parsed JSON
    # makes its own conversion a pass-through: one strict decode per request.
    ScopeState.from_scope(request.scope).json = decoded
    return None


async def _rule_errors(
    request: Request[Any, Any, Any], struct: type[msgspec.Struct], partial: dict[str, Any]
) -> list[FieldError]:
    """The body's business rules over the fields that passed the schema.

    Only for a tenant's routes: the guard has already refused a tenant the caller cannot
    reach, so rules that read the tenant (its currency) reveal nothing of another's.
    """
    rules = getattr(struct, "rules", None)
    tenant_id = request.path_params.get("tenant_id")
    if rules is None or tenant_id is None:
        return []
    scope = await TenantScope.open(tenant_id, request.user)
    found: list[FieldError] = rules(partial, scope)
    return found


def _body_required(struct: type[msgspec.Struct]) -> bool:
    return any(f.required for f in msgspec.structs.fields(struct))


def validation_failed(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    errors = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            where = str(item.get("key") or item.get("source") or "$")
            errors.append(FieldError(where, str(item.get("message", "invalid value"))))
    status = 422 if errors else 400
    return _response(status, _body(status, str(exc.detail), errors or None))


def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    return _response(exc.status_code, _body(exc.status_code, str(exc.detail)), exc.headers)


def unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error", path=request.url.path, method=request.method)
    return _response(500, _body(500, "internal error"))


EXCEPTION_HANDLERS: dict[Any, Any] = {
    InvalidInput: invalid_input,
    ValidationException: validation_failed,
    HTTPException: http_error,
    BadCursor: lambda r, e: _response(
        422, _body(422, "invalid input", [FieldError("cursor", str(e))])
    ),
    msgspec.ValidationError: lambda r, e: _response(422, _body(422, str(e))),
    Exception: unexpected,
}
