from __future__ import annotations

import pytest

from backend.settings import Settings, SettingsError


def env(monkeypatch, tmp_path, **values):
    for name in (
        "KRAVLAB_ENV",
        "KRAVLAB_SECRET_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "KRAVLAB_WORKERS",
        "KRAVLAB_IDEMPOTENCY_TTL_HOURS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KRAVLAB_VAR_DIR", str(tmp_path))
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_defaults_work_on_a_laptop(monkeypatch, tmp_path):
    env(monkeypatch, tmp_path)
    settings = Settings.from_env()
    assert settings.database_url == f"sqlite:///{tmp_path / 'kravlab.sqlite3'}"
    assert settings.redis_url is None and not settings.is_postgres
    assert len(settings.secret_key) >= 32
    assert Settings.from_env().secret_key == settings.secret_key  # kept under var/, not regenerated
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_production_requires_a_secret(monkeypatch, tmp_path):
    env(monkeypatch, tmp_path, KRAVLAB_ENV="production")
    with pytest.raises(SettingsError, match="KRAVLAB_SECRET_KEY"):
        Settings.from_env()
    env(monkeypatch, tmp_path, KRAVLAB_ENV="production", KRAVLAB_SECRET_KEY="short")
    with pytest.raises(SettingsError, match="at least 32"):
        Settings.from_env()
    env(
        monkeypatch,
        tmp_path,
        KRAVLAB_ENV="production",
        KRAVLAB_SECRET_KEY="s" * 40,
        DATABASE_URL="postgresql://u:p@db:5432/kravlab",
        REDIS_URL="redis://cache:6379/0",
    )
    settings = Settings.from_env()
    assert settings.is_postgres and settings.redis_url == "redis://cache:6379/0"


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("DATABASE_URL", "mysql://x/y", "DATABASE_URL"),
        ("DATABASE_URL", "sqlite:///", "no SQLite file"),
        ("DATABASE_URL", "postgresql://host:5432/", "DATABASE_URL"),
        ("KRAVLAB_ENV", "staging", "KRAVLAB_ENV"),
        ("KRAVLAB_WORKERS", "two", "integer"),
        ("KRAVLAB_IDEMPOTENCY_TTL_HOURS", "12", "at least 24"),
    ],
)
def test_bad_settings_are_refused(monkeypatch, tmp_path, name, value, match):
    env(monkeypatch, tmp_path, **{name: value})
    with pytest.raises(SettingsError, match=match):
        Settings.from_env()
