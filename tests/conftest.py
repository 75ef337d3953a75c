"""Test configuration: one real database per run, chosen by KRAVLAB_TEST_DB.

`make test` runs the suite twice: on a fresh SQLite file and on a fresh PostgreSQL
database. Without a reachable PostgreSQL (or Redis) those parts are skipped with one line,
unless KRAVLAB_REQUIRE_SERVICES=1 (CI), where a missing service fails the run.
"""

from __future__ import annotations

import os
import secrets
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from tests.support.server import LiveServer

ENGINE = os.environ.get("KRAVLAB_TEST_DB", "sqlite")
REQUIRE_SERVICES = os.environ.get("KRAVLAB_REQUIRE_SERVICES") == "1"
POSTGRES_URL = os.environ.get(
    "KRAVLAB_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/kravlab_test"
)
REDIS_URL = os.environ.get("KRAVLAB_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
VAR_DIR = Path(tempfile.mkdtemp(prefix="kravlab-test-"))


def reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or 5432), timeout=1
        ):
            return True
    except OSError:
        return False


def _fresh_postgres(url: str) -> None:
    """Drop and recreate the test database so every run starts empty."""
    import asyncio

    import asyncpg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin_url = parsed._replace(path="/postgres").geturl()

    async def recreate() -> None:
        connection = await asyncpg.connect(admin_url)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    asyncio.run(recreate())


SKIP_RUN: str | None = None
if ENGINE == "postgres":
    if not reachable(POSTGRES_URL):
        message = f"PostgreSQL not reachable at {POSTGRES_URL}"
        if REQUIRE_SERVICES:
            raise pytest.UsageError(message + " and KRAVLAB_REQUIRE_SERVICES=1")
        SKIP_RUN = f"skipping the PostgreSQL run: {message}"
    else:
        _fresh_postgres(POSTGRES_URL)
    os.environ["DATABASE_URL"] = POSTGRES_URL
elif ENGINE == "sqlite":
    os.environ["DATABASE_URL"] = f"sqlite:///{VAR_DIR / 'test.sqlite3'}"
else:
    raise pytest.UsageError(f"KRAVLAB_TEST_DB must be sqlite or postgres, got {ENGINE!r}")

os.environ["KRAVLAB_ENV"] = "test"
os.environ["KRAVLAB_VAR_DIR"] = str(VAR_DIR)
os.environ["KRAVLAB_SECRET_KEY"] = secrets.token_urlsafe(48)
os.environ.pop("REDIS_URL", None)


def pytest_configure(config: pytest.Config) -> None:
    if SKIP_RUN:
        pytest.exit(SKIP_RUN, returncode=0)


def pytest_report_header(config: pytest.Config) -> str:
    return f"kravlab database: {ENGINE} ({os.environ['DATABASE_URL']})"


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not reachable(REDIS_URL.replace("redis://", "tcp://")):
        if REQUIRE_SERVICES:
            pytest.fail(f"Redis not reachable at {REDIS_URL} and KRAVLAB_REQUIRE_SERVICES=1")
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    return REDIS_URL


@pytest.fixture(scope="session")
def database_url() -> str:
    return os.environ["DATABASE_URL"]


@pytest.fixture(scope="session")
async def migrated() -> None:
    from backend.migrate import migrate

    await migrate()


@pytest.fixture(scope="session")
def settings(migrated: None) -> Any:
    from backend.settings import Settings

    return Settings.from_env()


@pytest.fixture(scope="session")
def server(migrated: None) -> Iterator[LiveServer]:
    live = LiveServer().start()
    yield live
    live.stop()


@pytest.fixture(scope="session")
async def client(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
        yield http


@pytest.fixture(scope="session")
async def admin(client: httpx.AsyncClient) -> dict[str, str]:
    """Headers of an agency admin's session."""
    from tests.support.world import agency_user

    return await agency_user(client)


@pytest.fixture
async def tenant(client: httpx.AsyncClient, admin: dict[str, str]) -> Any:
    """A freshly onboarded tenant (SEK) with its default API key."""
    from tests.support.world import onboard

    return await onboard(client, admin)
