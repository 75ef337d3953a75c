"""Logged tracebacks never carry the frames' variables: those hold credentials."""

from __future__ import annotations

import structlog

from backend.app import create_app
from backend.settings import Settings


def test_an_unhandled_error_logs_no_local_variables(capsys, tmp_path):
    create_app(Settings(database_url=f"sqlite:///{tmp_path / 'x.sqlite3'}", secret_key="s" * 40))
    authorization = "Bearer kl_THIS-MUST-NOT-BE-LOGGED"  # a local, as a request's headers are

    def handler(headers: str) -> None:
        raise RuntimeError("boom")

    try:
        handler(authorization)
    except RuntimeError:
        structlog.get_logger("kravlab").exception("unhandled error", path="/x")
    out = capsys.readouterr()
    logged = out.out + out.err
    assert "unhandled error" in logged and "RuntimeError: boom" in logged
    assert "THIS-MUST-NOT-BE-LOGGED" not in logged
