"""The fault suite: real processes and real servers, broken on purpose, each test bounded."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.faults.services import ThrowawayPostgres, ThrowawayRedis


def kravlab(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "backend.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture
def own_postgres() -> Iterator[ThrowawayPostgres]:
    postgres = ThrowawayPostgres()
    try:
        yield postgres.create()
    finally:
        postgres.remove()


@pytest.fixture
def own_redis() -> Iterator[ThrowawayRedis]:
    redis = ThrowawayRedis()
    try:
        yield redis.start()
    finally:
        redis.remove()
