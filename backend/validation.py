"""Decoding request bodies strictly, and naming every bad field when that fails.

msgspec stops at the first bad field, which is what the fast path wants: a valid body is
decoded in C. Only when that fails do we walk the body to name every bad field
(`invoices[17].due_date`), so a client can fix a 10 000-row batch in one round trip.

The walk is bounded before it starts: a list field's length is checked on undecoded items
(`msgspec.Raw`), so a 60 000-row batch is refused without looking at one row, and each row
is then decoded on its own, in C, and only a failing row is walked field by field. The walk
also keeps the fields that passed (`InvalidBody.partial`), so a body's business rules can
still judge them and one answer lists schema and rule errors together.

Bodies that are not JSON at all (bad syntax, bytes that are not UTF-8, nesting deeper than
the decoder follows) are `MalformedBody`, answered 400.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import UnionType
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Literal,
    TypeVar,
    Union,
    get_args,
    get_origin,
)

import msgspec
from litestar.exceptions import HTTPException

if TYPE_CHECKING:
    from tenants.scope import TenantScope

# Control characters are refused in single-line text: PostgreSQL rejects NUL outright and
# the rest only ever arrive by mistake or malice. `(?!\n)` because Python's `$` also
# matches before a final line break; ECMAScript's never does, so the lookahead changes
# nothing for clients reading the OpenAPI document.
SINGLE_LINE = r"^[^\x00-\x1f\x7f]*(?!\n)$"
MULTI_LINE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
_AT_PATH = re.compile(r" - at `\$(.*)`$")

S = TypeVar("S", bound=msgspec.Struct)


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


class InvalidBody(InvalidInput):
    """A body that is JSON but not the route's struct.

    `partial` holds what passed: top-level fields by name and, for a list of structs, one
    mapping per row with the row's valid fields (an empty mapping for a row that is not an
    object). A list refused as a whole (too long, not a list) is absent.
    """

    def __init__(self, errors: list[FieldError], partial: dict[str, Any]) -> None:
        super().__init__(errors)
        self.partial = partial


class MalformedBody(ValueError):
    """Not JSON this service reads: bad syntax, not UTF-8, or nested too deeply (a 400)."""


# Rules that need more than the body (the tenant's currency, other rows) and are checked
# after the schema. A body struct names them in a `rules` class variable; they get the
# body as a mapping of its valid fields (as `InvalidBody.partial`) and the tenant scope.
BodyRules = Callable[[Mapping[str, Any], "TenantScope"], list[FieldError]]


def decode_body(raw: bytes, struct_type: type[S]) -> S:
    """`raw` as `struct_type`, strictly, or `MalformedBody` / `InvalidBody` with every error."""
    try:
        envelope = _envelope(struct_type)
        if envelope is not None:
            # Counts the rows of list fields without decoding them: an over-long batch
            # costs one pass of the parser, not a walk of every row.
            msgspec.json.decode(raw, type=envelope)
        return msgspec.json.decode(raw, type=struct_type)
    except msgspec.ValidationError:
        pass
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise MalformedBody(_malformed(exc)) from None
    try:
        # The typed decode may have stopped before bytes that are not UTF-8, and skipping
        # a value (msgspec.Raw) does not look inside its strings.
        raw.decode()
        errors, partial = _walk_body(raw, struct_type)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise MalformedBody(_malformed(exc)) from None
    raise InvalidBody(errors or [FieldError("$", "invalid body")], partial)


def _malformed(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "malformed JSON: nested too deeply"
    if isinstance(exc, UnicodeDecodeError):
        return "malformed JSON: the body is not UTF-8"
    return f"malformed JSON: {exc}"


def _walk_body(
    raw: bytes, struct_type: type[msgspec.Struct]
) -> tuple[list[FieldError], dict[str, Any]]:
    try:
        top = msgspec.json.decode(raw, type=dict[str, msgspec.Raw])
    except msgspec.ValidationError:
        return [
            FieldError("$", f"expected an object, got {_json_type(msgspec.json.decode(raw))}")
        ], {}
    errors: list[FieldError] = []
    partial: dict[str, Any] = {}
    fields, known = _fields(struct_type)
    errors.extend(FieldError(name, "unknown field") for name in top if name not in known)
    for info in fields:
        name = info.encode_name
        if name not in top:
            if info.required:
                errors.append(FieldError(name, "required field is missing"))
            continue
        item = _struct_in(_list_item(info.type))
        if item is not None:
            try:
                rows = msgspec.json.decode(top[name], type=_raw_list(info.type))
            except msgspec.ValidationError as exc:
                errors.append(FieldError(name, _message(exc)))
                continue
            if rows is None:  # an optional list sent as null
                partial[info.name] = None
                continue
            partial[info.name] = [
                _row(row, item, f"{name}[{i}]", errors) for i, row in enumerate(rows)
            ]
            continue
        try:
            partial[info.name] = msgspec.json.decode(top[name], type=info.type)
        except msgspec.ValidationError:
            found, value = check_value(msgspec.json.decode(top[name]), info.type, name)
            errors.extend(found)
            if not found:
                partial[info.name] = value
    return errors, partial


def _row(
    raw: msgspec.Raw, struct_type: type[msgspec.Struct], path: str, errors: list[FieldError]
) -> dict[str, Any]:
    """One row's valid fields; its errors are appended to `errors`."""
    try:
        return fields_of(msgspec.json.decode(raw, type=struct_type))
    except msgspec.ValidationError:
        pass
    found, value = check_struct(msgspec.json.decode(raw), struct_type, path)
    errors.extend(found or [FieldError(path, "invalid value")])
    return value


def fields_of(value: msgspec.Struct) -> dict[str, Any]:
    return {f: getattr(value, f) for f in value.__struct_fields__}


def check_struct(
    value: Any, struct_type: type[msgspec.Struct], path: str
) -> tuple[list[FieldError], dict[str, Any]]:
    """All errors of `value` against `struct_type`, and the fields that passed."""
    if not isinstance(value, dict):
        return [FieldError(path, f"expected an object, got {_json_type(value)}")], {}
    errors: list[FieldError] = []
    good: dict[str, Any] = {}
    fields, known = _fields(struct_type)
    for name in value:
        if name not in known:
            errors.append(FieldError(_join(path, name), "unknown field"))
    for info in fields:
        name = info.encode_name
        if name not in value:
            if info.required:
                errors.append(FieldError(_join(path, name), "required field is missing"))
            continue
        try:  # most fields of a bad row are good: one conversion in C says so
            good[info.name] = msgspec.convert(value[name], info.type)
        except msgspec.ValidationError as exc:
            where = _join(path, name)
            if _is_scalar(info.type):  # nothing inside to walk: this error is the one
                errors.append(FieldError(where + _at(exc), _message(exc, info.type)))
            else:
                errors.extend(check_value(value[name], info.type, where)[0])
    return errors, good


def check_value(value: Any, annotation: Any, path: str) -> tuple[list[FieldError], Any]:
    """The errors of one decoded JSON value against a field's type, or none and its value."""
    nested = _struct_in(annotation)
    if nested is not None and isinstance(value, dict):
        errors, _ = check_struct(value, nested, path)
        return errors, (None if errors else msgspec.convert(value, nested))
    item_type = _list_item(annotation)
    if item_type is not None and isinstance(value, list):
        try:  # the length first, so an over-long list is one error, not one per item
            msgspec.convert(value, _raw_list(annotation, item=Any))
        except msgspec.ValidationError as exc:
            return [FieldError(path, _message(exc))], None
        errors = [
            e for i, v in enumerate(value) for e in check_value(v, item_type, f"{path}[{i}]")[0]
        ]
        if errors:
            return errors, None
    try:
        return [], msgspec.convert(value, annotation)
    except msgspec.ValidationError as exc:
        return [FieldError(path + _at(exc), _message(exc, annotation))], None


def _at(exc: msgspec.ValidationError) -> str:
    """The path msgspec names inside the value (`.email`, `[2]`), if any."""
    found = _AT_PATH.search(str(exc))
    return found.group(1) if found else ""


@functools.cache
def _is_scalar(annotation: Any) -> bool:
    return _struct_in(annotation) is None and _list_item(annotation) is None


@functools.cache
def _envelope(struct_type: type[msgspec.Struct]) -> type[msgspec.Struct] | None:
    """`struct_type` with only its length-limited list fields, each as a list of raw items."""
    lists = [
        (f.encode_name, _raw_list(f.type) | None, None)
        for f in _fields(struct_type)[0]
        if _list_item(f.type) is not None and _limits(f.type)
    ]
    if not lists:
        return None
    return msgspec.defstruct(f"{struct_type.__name__}Envelope", lists)


def _limits(annotation: Any) -> list[msgspec.Meta]:
    """The `Meta` of an `Annotated[list[...], Meta(...)]` (or its optional form)."""
    for candidate in (annotation, *get_args(annotation)):
        if hasattr(candidate, "__metadata__"):
            return [m for m in candidate.__metadata__ if isinstance(m, msgspec.Meta)]
    return []


def _raw_list(annotation: Any, item: Any = msgspec.Raw) -> Any:
    """The same list type with its length limits, but items left undecoded."""
    limits = _limits(annotation)
    shape = list[item]
    typed = Annotated[(shape, *limits)] if limits else shape
    if type(None) in _options(annotation):
        return typed | None
    return typed


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


def _options(annotation: Any) -> list[Any]:
    """The members of a union (`X | None`), else the annotation itself, each unwrapped."""
    annotation = _unwrap(annotation)
    if get_origin(annotation) in (Union, UnionType):
        return [_unwrap(a) for a in get_args(annotation)]
    return [annotation]


@functools.cache
def _fields(
    struct_type: type[msgspec.Struct],
) -> tuple[tuple[msgspec.structs.FieldInfo, ...], frozenset[str]]:
    """A struct's fields and their JSON names (msgspec re-reads the annotations each call)."""
    fields = msgspec.structs.fields(struct_type)
    return fields, frozenset(f.encode_name for f in fields)


@functools.cache
def _struct_in(annotation: Any) -> type[msgspec.Struct] | None:
    for candidate in _options(annotation):
        if isinstance(candidate, type) and issubclass(candidate, msgspec.Struct):
            return candidate
    return None


@functools.cache
def _list_item(annotation: Any) -> Any:
    for candidate in _options(annotation):
        if get_origin(candidate) is list:
            return get_args(candidate)[0]
    return None
