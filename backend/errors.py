"""Every error is JSON `{status, message}`, and validation errors add `errors: [{path, message}]`.

Litestar's own body decoding stops at the first bad field. Routes that declare their body
struct (`opt={"body": Struct}`) are checked first by `check_body`, a before-request hook
that answers 422 with every bad field (400 for malformed JSON) before Litestar decodes.
A 500 is logged with its traceback and says nothing about internals.
"""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.utils.scope.state import ScopeState

from backend.validation import FieldError, InvalidInput, decode_all_errors
from tenants.pagination import BadCursor

log = structlog.get_logger("kravlab")


def _body(status: int, message: str, errors: list[FieldError] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status, "message": message}
    if errors is not None:
        body["errors"] = [{"path": e.path, "message": e.message} for e in errors]
    return body


def _response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Response[Any]:
    return Response(content=body, status_code=status, media_type=MediaType.JSON, headers=headers)


def invalid_input(_: Request[Any, Any, Any], exc: InvalidInput) -> Response[Any]:
    return _response(422, _body(422, exc.detail, exc.errors))


async def check_body(request: Request[Any, Any, Any]) -> Response[Any] | None:
    struct = request.route_handler.opt.get("body")
    if struct is None or request.method != "POST":
        return None
    raw = await request.body()
    if not raw.strip() and not _body_required(struct):
        return None
    try:
        decoded = msgspec.json.decode(raw, type=struct)
    except (msgspec.ValidationError, msgspec.DecodeError):
        errors = decode_all_errors(raw, struct)
        if len(errors) == 1 and errors[0].message.startswith("malformed JSON"):
            return _response(400, _body(400, errors[0].message))
        return _response(422, _body(422, "invalid input", errors))
    # Litestar would decode the body again (to builtins, then convert, and leniently: "100"
    # would pass as 100). Handing it the strictly decoded struct as the request's parsed JSON
    # makes its own conversion a pass-through: one strict decode per request.
    ScopeState.from_scope(request.scope).json = decoded
    return None


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
