"""One page of a list: its items and the cursor of the next page, typed by what it lists."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from msgspec import Meta, Struct

T = TypeVar("T")


class Page(Struct, Generic[T]):
    items: list[T]
    next_cursor: (
        Annotated[str, Meta(description="pass as ?cursor= for the next page; null at the end")]
        | None
    )
