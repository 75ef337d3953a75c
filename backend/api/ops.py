"""What the operations routes answer."""

from __future__ import annotations

from typing import Literal

from msgspec import Struct


class Health(Struct):
    status: Literal["ok"]
