"""The interactive API docs render in a real browser with no network but the server's own.

Debian's Chromium (installed by `make browser`) driven by Playwright; every request that is
not to the live server on 127.0.0.1 is refused and recorded, so a script, style, font or
favicon still fetched from a CDN fails the test, and the page must show the operations.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.support.server import LiveServer

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# Summaries of operations the pages must list (from the handlers' `summary=`).
OPERATIONS = ("Upsert up to 10 000 invoices", "Onboard a client", "Log in with email and password")
# Paths Scalar lists in its (collapsed) groups.
PATHS = ("/api/v1/auth/login", "/api/v1/tenants/{tenant_id}/api-keys", "/api/v1/me")


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} missing: run `make browser`"
        if os.environ.get("KRAVLAB_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=FLAGS
        )
        yield chromium
        await chromium.close()


async def _open_offline(browser: Any, url: str) -> tuple[Any, list[str]]:
    """A page whose requests anywhere but the server are aborted and listed."""
    outside: list[str] = []
    page = await browser.new_page()

    async def only_local(route: Any) -> None:
        if urlparse(route.request.url).hostname == "127.0.0.1":
            await route.continue_()
        else:
            outside.append(route.request.url)
            await route.abort()

    await page.route("**/*", only_local)
    await page.goto(url, wait_until="load")
    return page, outside


async def test_scalar_docs_render_offline(server: LiveServer, browser: Any) -> None:
    page, outside = await _open_offline(browser, server.url + "/schema")
    await page.get_by_text("Liveness and database check").first.wait_for(timeout=30_000)
    for path in PATHS:
        assert await page.get_by_text(path, exact=True).count() >= 1, path
    assert outside == []
    await page.close()


async def test_swagger_docs_render_offline(server: LiveServer, browser: Any) -> None:
    page, outside = await _open_offline(browser, server.url + "/schema/swagger")
    await page.locator(".opblock").first.wait_for(timeout=30_000)
    assert await page.locator(".opblock").count() >= 20
    for summary in OPERATIONS:
        assert await page.get_by_text(summary).count() >= 1, summary
    assert outside == []
    await page.close()
