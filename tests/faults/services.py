"""Throwaway PostgreSQL and Redis servers that a fault test may stop, kill and restart.

The machine's shared servers belong to every engineer's tests, so faults are never done to
them: each of these lives in a temporary directory on a free port and is removed after.
PostgreSQL runs as the `postgres` OS user (it refuses root). Missing binaries skip the test
with one line, unless KRAVLAB_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.server import free_port

REQUIRE_SERVICES = os.environ.get("KRAVLAB_REQUIRE_SERVICES") == "1"


def _missing(what: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} not installed and KRAVLAB_REQUIRE_SERVICES=1")
    pytest.skip(f"{what} not installed")


def _as_postgres(*args: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)


class ThrowawayPostgres:
    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not found and not shutil.which("pg_ctl"):
            _missing("PostgreSQL (initdb, pg_ctl)")
        self.bin = Path(found[-1]).parent if found else Path(shutil.which("pg_ctl") or "").parent
        if os.geteuid() == 0 and not shutil.which("runuser"):
            _missing("runuser (PostgreSQL refuses to run as root)")
        self.dir = Path(tempfile.mkdtemp(prefix="kravlab-fault-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/kravlab"
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")

    def _run(self, *args: str) -> None:
        subprocess.run(
            _as_postgres(*args), check=True, capture_output=True, timeout=120, cwd=self.dir
        )

    def create(self) -> ThrowawayPostgres:
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-N"
        )
        self.start()
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "kravlab")
        return self

    def start(self) -> None:
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "server.log"),
            "-o",
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir}"
            " -c fsync=off",
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError):
                self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


class ThrowawayRedis:
    """A redis-server that writes every command to its append-only file before answering,
    so a SIGKILL loses nothing it acknowledged."""

    def __init__(self) -> None:
        self.server = shutil.which("redis-server")
        if not self.server:
            _missing("redis-server")
        self.dir = Path(tempfile.mkdtemp(prefix="kravlab-fault-redis-"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ThrowawayRedis:
        self.process = subprocess.Popen(
            [
                str(self.server),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ],
            stdout=(self.dir / "server.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        from redis import Redis

        client = Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return self
            except Exception:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start: " + (self.dir / "server.log").read_text())

    def kill(self) -> None:
        """A crash, not a shutdown: nothing gets a chance to be saved on the way out."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
