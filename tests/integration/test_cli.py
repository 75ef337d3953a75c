"""The `kravlab` command as an operator runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import httpx


def kravlab(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_migrate_is_idempotent(migrated):
    for _ in range(2):
        result = kravlab("migrate")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "migrations applied" in result.stdout


def test_admin_create_refuses_duplicates_and_short_passwords():
    email = f"ops-{os.getpid()}@agency.test"
    result = kravlab("admin", "create", "--email", email, "--password", "a long enough secret")
    assert result.returncode == 0 and "created agency_admin" in result.stdout
    again = kravlab("admin", "create", "--email", email, "--password", "a long enough secret")
    assert again.returncode == 1 and "exists" in again.stdout
    assert kravlab("admin", "create", "--email", "x@y.test", "--password", "short").returncode == 2


def test_a_configuration_error_is_named_with_the_value_as_given():
    result = kravlab("migrate", KRAVLAB_WORKERS="[bold]two")
    assert result.returncode == 2
    assert (
        "configuration error: KRAVLAB_WORKERS must be an integer, got '[bold]two'" in result.stdout
    )


async def test_admin_created_by_cli_can_log_in(client):
    email = f"ops2-{os.getpid()}@agency.test"
    assert (
        kravlab("admin", "create", "--email", email, "--password", "another long secret").returncode
        == 0
    )
    r = await client.post(
        "/api/v1/auth/login", json={"email": email, "password": "another long secret"}
    )
    assert r.status_code == 200
    me = (
        await client.get(
            "/api/v1/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"}
        )
    ).json()
    assert me["role"] == "agency_admin" and me["tenant_id"] is None


def test_demo_seeds_once_and_prints_working_credentials(tmp_path):
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "KRAVLAB_VAR_DIR": str(tmp_path),
        "KRAVLAB_ENV": "demo",
    }
    first = kravlab("demo", "--no-serve", **env)
    assert first.returncode == 0, first.stdout + first.stderr
    keys = re.findall(r"API key\s+(kl_\S+)", first.stdout)
    assert len(keys) == 3  # one per demo client (backend.demo.TENANTS)
    second = kravlab("demo", "--no-serve", **env)
    assert (
        re.findall(r"API key\s+(kl_\S+)", second.stdout) == keys
    )  # same logins, not a second seed
    tenant_id = re.search(r"\(id ([0-9a-f-]{36})\)", first.stdout).group(1)
    from tests.support.server import LiveServer

    live = LiveServer(**env).start()
    try:
        r = httpx.get(
            f"{live.url}/api/v1/tenants/{tenant_id}/invoices?limit=1000",
            headers={"Authorization": f"Bearer {keys[0]}"},
            timeout=60,
        )
        assert r.status_code == 200 and len(r.json()["items"]) == 1000 and r.json()["next_cursor"]
        statuses = {i["status"] for i in r.json()["items"]}
        assert {"paid", "in_collection"} <= statuses  # the oldest: paid, or escalated
        for status in ("overdue", "open"):  # and a book of this week beside them
            recent = httpx.get(
                f"{live.url}/api/v1/tenants/{tenant_id}/invoices?status={status}&limit=1",
                headers={"Authorization": f"Bearer {keys[0]}"},
                timeout=60,
            ).json()["items"]
            assert recent, status
        unmatched = httpx.get(
            f"{live.url}/api/v1/tenants/{tenant_id}/payments?unmatched=true",
            headers={"Authorization": f"Bearer {keys[0]}"},
            timeout=60,
        ).json()["items"]
        assert unmatched  # the demo keeps some payments for the unmatched queue
    finally:
        live.stop()
