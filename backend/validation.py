"""Every validation error of a request body, each with its path, not just the first.

msgspec stops at the first bad field, which is what the fast path wants: a valid batch is
decoded in C. Only when that fails do we walk the body field by field to name every bad
field (`invoices[17].due_date`), so a client can fix a 10 000-row batch in one round trip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

import msgspec
from litestar.exceptions import HTTPException

# Control characters are refused in single-line text: PostgreSQL rejects NUL outright and
# the rest only ever arrive by mistake or malice.
SINGLE_LINE = r"^[^\x00-\x1f\x7f]*$"
MULTI_LINE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
_AT_PATH = re.compile(r" - at `\$(.*)`$")


@dataclass(frozen=True)
class FieldError:
    path: str
    message: str


class InvalidInput(HTTPException):
    """422 carrying every bad field; the exception handler renders `errors`."""

    status_code = 422

    def __init__(self, errors: list[FieldError], message: str = "invalid input") -> None:
        super().__init__(detail=message)
        self.errors = errors


def struct_errors(value: Any, struct_type: type[msgspec.Struct], path: str) -> list[FieldError]:
    """All errors of `value` against `struct_type`, recursing into nested structs and lists."""
    if not isinstance(value, dict):
        return [FieldError(path, f"expected an object, got {_json_type(value)}")]
    errors: list[FieldError] = []
    fields = msgspec.structs.fields(struct_type)
    known = {f.encode_name for f in fields}
    for name in value:
        if name not in known:
            errors.append(FieldError(_join(path, name), "unknown field"))
    for info in fields:
        where = _join(path, info.encode_name)
        if info.encode_name not in value:
            if info.required:
                errors.append(FieldError(where, "required field is missing"))
            continue
        errors.extend(value_errors(value[info.encode_name], info.type, where))
    return errors


def value_errors(value: Any, annotation: Any, path: str) -> list[FieldError]:
    nested = _struct_in(annotation)
    if nested is not None and isinstance(value, dict):
        return struct_errors(value, nested, path)
    item_type = _list_item(annotation)
    if item_type is not None and isinstance(value, list):
        try:
            msgspec.convert(value, annotation)
        except msgspec.ValidationError as exc:
            errors = [
                e for i, v in enumerate(value) for e in value_errors(v, item_type, f"{path}[{i}]")
            ]
            return errors or [FieldError(path, _message(exc))]
        return []
    try:
        msgspec.convert(value, annotation)
    except msgspec.ValidationError as exc:
        found = _AT_PATH.search(str(exc))
        return [FieldError(path + (found.group(1) if found else ""), _message(exc, annotation))]
    return []


def decode_all_errors(body: bytes, struct_type: type[msgspec.Struct]) -> list[FieldError]:
    """Errors of a raw JSON body that failed the fast decode (malformed JSON is one error)."""
    try:
        raw = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        return [FieldError("$", f"malformed JSON: {exc}")]
    return struct_errors(raw, struct_type, "") or [FieldError("$", "invalid body")]


# What a failed pattern means, in words a person can act on.
PATTERN_MEANINGS = {
    SINGLE_LINE: "must not contain control characters or line breaks",
    MULTI_LINE: "must not contain control characters",
    "^[A-Z]{3}$": "must be a three-letter ISO 4217 code such as SEK",
}


def _message(exc: msgspec.ValidationError, annotation: Any = None) -> str:
    text = _AT_PATH.sub("", str(exc))
    text = text[0].lower() + text[1:] if text else "invalid value"
    found = re.search(r"matching regex '(.*)'$", text)
    if found:
        pattern = found.group(1).encode().decode("unicode_escape")
        return PATTERN_MEANINGS.get(pattern, f"must match the pattern {pattern}")
    if text.startswith("invalid enum value"):
        allowed = _literal_values(annotation)
        if allowed:
            return f"{text}: expected one of {', '.join(map(repr, allowed))}"
    return text


def _literal_values(annotation: Any) -> tuple[Any, ...]:
    annotation = _unwrap(annotation)
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    for arg in get_args(annotation):
        if get_origin(arg) is Literal:
            return get_args(arg)
    return ()


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _json_type(value: Any) -> str:
    return {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        int: "integer",
        float: "number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _unwrap(annotation: Any) -> Any:
    while (
        get_origin(annotation) is not None
        and get_args(annotation)
        and hasattr(annotation, "__metadata__")
    ):
        annotation = get_args(annotation)[0]
    return annotation


def _struct_in(annotation: Any) -> type[msgspec.Struct] | None:
    annotation = _unwrap(annotation)
    candidates = get_args(annotation) if get_origin(annotation) is not None else (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, msgspec.Struct):
            return candidate
    return None


def _list_item(annotation: Any) -> Any:
    annotation = _unwrap(annotation)
    if get_origin(annotation) is list:
        return get_args(annotation)[0]
    return None
