"""Every tunable of the service, read once from the environment.

One module so that `infra/.env.example`, the README and the code cannot drift apart: each
field names its variable and its default, and every default works on one laptop.
"""

from __future__ import annotations

import functools
import os
import secrets
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

ENVIRONMENTS = ("development", "demo", "test", "production")
SMTP_TLS_MODES = ("none", "starttls", "tls")
T = TypeVar("T")


class SettingsError(RuntimeError):
    """A setting is missing or malformed; the service must not start."""


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number of seconds, got {raw!r}") from exc
    if not value > 0 or value == float("inf"):
        raise SettingsError(f"{name} must be a positive number of seconds, got {raw!r}")
    return value


def _env(name: str, default: T, *, secret: bool = False) -> T:
    """A field that names its environment variable, so the docs' lists can be checked."""
    return field(default=default, metadata={"env": name}, repr=not secret)


@dataclass(frozen=True)
class Settings:
    # KRAVLAB_ENV: development | demo | test | production. Production refuses to start
    # without explicit secrets; the others generate one and keep it under var_dir.
    env: str = _env("KRAVLAB_ENV", "development")
    # KRAVLAB_VAR_DIR: where the embedded database and generated secrets live.
    var_dir: Path = _env("KRAVLAB_VAR_DIR", Path("var"))  # noqa: RUF009 (a Path is immutable)
    # DATABASE_URL: sqlite:///path/file.sqlite3 or postgresql://user:pass@host:port/db.
    database_url: str = _env("DATABASE_URL", "sqlite:///var/kravlab.sqlite3")
    # REDIS_URL: unset means background jobs run in-process.
    redis_url: str | None = _env("REDIS_URL", None)
    # KRAVLAB_SECRET_KEY: signs session tokens.
    secret_key: str = _env("KRAVLAB_SECRET_KEY", "", secret=True)
    # KRAVLAB_TOKEN_TTL_SECONDS: lifetime of a login session token.
    token_ttl_seconds: int = _env("KRAVLAB_TOKEN_TTL_SECONDS", 8 * 3600)
    # KRAVLAB_RATE_LIMIT_PER_MINUTE: requests per credential (or per address when anonymous).
    rate_limit_per_minute: int = _env("KRAVLAB_RATE_LIMIT_PER_MINUTE", 1200)
    # KRAVLAB_LOGIN_FAILURES_PER_MINUTE: failed logins per account before 429 (per address:
    # five times as many, since an office shares one address).
    login_failures_per_minute: int = _env("KRAVLAB_LOGIN_FAILURES_PER_MINUTE", 10)
    # KRAVLAB_MAX_BODY_BYTES: larger request bodies answer 413.
    max_body_bytes: int = _env("KRAVLAB_MAX_BODY_BYTES", 16 * 1024 * 1024)
    # KRAVLAB_IDEMPOTENCY_TTL_HOURS: how long Idempotency-Key answers are kept (>= 24).
    idempotency_ttl_hours: int = _env("KRAVLAB_IDEMPOTENCY_TTL_HOURS", 48)
    # KRAVLAB_IDEMPOTENCY_LOCK_SECONDS: an in-flight key older than this is taken over
    # (its request died with its process).
    idempotency_lock_seconds: int = _env("KRAVLAB_IDEMPOTENCY_LOCK_SECONDS", 300)
    # KRAVLAB_PURGE_INTERVAL_SECONDS: how often expired Idempotency-Key records are deleted.
    purge_interval_seconds: float = _env("KRAVLAB_PURGE_INTERVAL_SECONDS", 3600.0)
    # KRAVLAB_DUNNING_INTERVAL_SECONDS: how often today's dunning run is made (idempotent per
    # date: more often than daily means no day is missed and new overdue invoices get steps).
    dunning_interval_seconds: float = _env("KRAVLAB_DUNNING_INTERVAL_SECONDS", 3600.0)
    # KRAVLAB_DB_POOL_SIZE: PostgreSQL connections per API process at most.
    db_pool_size: int = _env("KRAVLAB_DB_POOL_SIZE", 10)
    # KRAVLAB_DB_APPLICATION_NAME: how this service's connections show in pg_stat_activity.
    db_application_name: str = _env("KRAVLAB_DB_APPLICATION_NAME", "kravlab")
    # KRAVLAB_WORKERS: processes started by `kravlab serve`.
    workers: int = _env("KRAVLAB_WORKERS", 2)
    # KRAVLAB_LOG_LEVEL: debug, info, warning, error.
    log_level: str = _env("KRAVLAB_LOG_LEVEL", "info")
    # KRAVLAB_SMTP_HOST / _PORT: the mail server reminders go through (default: a local sink).
    smtp_host: str = _env("KRAVLAB_SMTP_HOST", "127.0.0.1")
    smtp_port: int = _env("KRAVLAB_SMTP_PORT", 1025)
    # KRAVLAB_SMTP_TLS: none | starttls | tls (implicit TLS, usually port 465).
    smtp_tls: str = _env("KRAVLAB_SMTP_TLS", "none")
    # KRAVLAB_SMTP_USER / _PASSWORD: empty user means no SMTP AUTH.
    smtp_user: str = _env("KRAVLAB_SMTP_USER", "")
    smtp_password: str = _env("KRAVLAB_SMTP_PASSWORD", "", secret=True)
    # KRAVLAB_SMTP_SENDER: the From address of every email.
    smtp_sender: str = _env("KRAVLAB_SMTP_SENDER", "kravlab@localhost")
    # KRAVLAB_SMS_GATEWAY_URL / _TOKEN: the HTTP SMS gateway; unset URL means SMS is refused.
    sms_gateway_url: str = _env("KRAVLAB_SMS_GATEWAY_URL", "")
    sms_gateway_token: str = _env("KRAVLAB_SMS_GATEWAY_TOKEN", "", secret=True)
    # KRAVLAB_CHANNEL_TIMEOUT_SECONDS: one SMTP or SMS gateway exchange at most; beyond it the
    # contact is a retryable failure.
    channel_timeout_seconds: float = _env("KRAVLAB_CHANNEL_TIMEOUT_SECONDS", 10.0)
    # KRAVLAB_WEBHOOK_INTERVAL_SECONDS: how often due webhook deliveries are attempted (each
    # attempt's request is bounded by KRAVLAB_CHANNEL_TIMEOUT_SECONDS).
    webhook_interval_seconds: float = _env("KRAVLAB_WEBHOOK_INTERVAL_SECONDS", 30.0)
    # KRAVLAB_JOB_STALE_SECONDS: a model fit or simulation whose heartbeat (every 5 s) has
    # been silent this long had its worker killed: it is failed, never left running.
    job_stale_seconds: float = _env("KRAVLAB_JOB_STALE_SECONDS", 120.0)
    # KRAVLAB_MAX_IMPORT_BYTES: the largest history upload (`POST /imports`, all its files);
    # it streams to disk under var_dir, never into memory. 1 000 000 invoices with their
    # payments and contacts take about 250 MB.
    max_import_bytes: int = _env("KRAVLAB_MAX_IMPORT_BYTES", 2 * 1024**3)
    # KRAVLAB_IMPORT_TIMEOUT_SECONDS: an import still loading after this long is stopped and
    # shown failed (nothing of it is loaded); also the RQ job's timeout.
    import_timeout_seconds: float = _env("KRAVLAB_IMPORT_TIMEOUT_SECONDS", 3600.0)
    # KRAVLAB_MAX_ACTIVE_SIMULATIONS: a tenant's queued or running simulations at most; one
    # more answers 429 with Retry-After (each may fit a model: minutes of a worker).
    max_active_simulations: int = _env("KRAVLAB_MAX_ACTIVE_SIMULATIONS", 3)
    # KRAVLAB_MAX_PORTFOLIO_TENANTS: tenants in one portfolio simulation at most (one job
    # each); more answers 422.
    max_portfolio_tenants: int = _env("KRAVLAB_MAX_PORTFOLIO_TENANTS", 100)
    # KRAVLAB_MODELS_KEPT: a tenant's model files kept under var_dir/models: the current
    # one and the newest previous ones up to this many in all; older files are deleted.
    models_kept: int = _env("KRAVLAB_MODELS_KEPT", 3)

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith(("postgresql://", "postgres://"))

    @property
    def sqlite_path(self) -> Path:
        if self.is_postgres:
            raise SettingsError("sqlite_path asked of a PostgreSQL configuration")
        return Path(self.database_url.removeprefix("sqlite:///"))

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ.get("KRAVLAB_ENV", "development")
        if env not in ENVIRONMENTS:
            raise SettingsError(
                f"KRAVLAB_ENV must be one of {', '.join(ENVIRONMENTS)}, got {env!r}"
            )
        var_dir = Path(os.environ.get("KRAVLAB_VAR_DIR", "var"))
        database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{var_dir / 'kravlab.sqlite3'}"
        _check_database_url(database_url)
        secret = os.environ.get("KRAVLAB_SECRET_KEY", "")
        if not secret:
            if env == "production":
                raise SettingsError("KRAVLAB_SECRET_KEY must be set in production")
            secret = _kept_secret(var_dir)
        elif len(secret) < 32:
            raise SettingsError("KRAVLAB_SECRET_KEY must be at least 32 characters")
        settings = cls(
            env=env,
            var_dir=var_dir,
            database_url=database_url,
            redis_url=os.environ.get("REDIS_URL") or None,
            secret_key=secret,
            token_ttl_seconds=_int("KRAVLAB_TOKEN_TTL_SECONDS", cls.token_ttl_seconds),
            rate_limit_per_minute=_int("KRAVLAB_RATE_LIMIT_PER_MINUTE", cls.rate_limit_per_minute),
            login_failures_per_minute=_int(
                "KRAVLAB_LOGIN_FAILURES_PER_MINUTE", cls.login_failures_per_minute
            ),
            max_body_bytes=_int("KRAVLAB_MAX_BODY_BYTES", cls.max_body_bytes),
            idempotency_ttl_hours=_int("KRAVLAB_IDEMPOTENCY_TTL_HOURS", cls.idempotency_ttl_hours),
            idempotency_lock_seconds=_int(
                "KRAVLAB_IDEMPOTENCY_LOCK_SECONDS", cls.idempotency_lock_seconds
            ),
            purge_interval_seconds=_seconds(
                "KRAVLAB_PURGE_INTERVAL_SECONDS", cls.purge_interval_seconds
            ),
            dunning_interval_seconds=_seconds(
                "KRAVLAB_DUNNING_INTERVAL_SECONDS", cls.dunning_interval_seconds
            ),
            db_pool_size=_int("KRAVLAB_DB_POOL_SIZE", cls.db_pool_size),
            db_application_name=os.environ.get(
                "KRAVLAB_DB_APPLICATION_NAME", cls.db_application_name
            ),
            workers=_int("KRAVLAB_WORKERS", cls.workers),
            log_level=os.environ.get("KRAVLAB_LOG_LEVEL", cls.log_level).lower(),
            smtp_host=os.environ.get("KRAVLAB_SMTP_HOST") or cls.smtp_host,
            smtp_port=_int("KRAVLAB_SMTP_PORT", cls.smtp_port),
            smtp_tls=os.environ.get("KRAVLAB_SMTP_TLS", cls.smtp_tls).lower() or cls.smtp_tls,
            smtp_user=os.environ.get("KRAVLAB_SMTP_USER", cls.smtp_user),
            smtp_password=os.environ.get("KRAVLAB_SMTP_PASSWORD", cls.smtp_password),
            smtp_sender=os.environ.get("KRAVLAB_SMTP_SENDER") or cls.smtp_sender,
            sms_gateway_url=os.environ.get("KRAVLAB_SMS_GATEWAY_URL", cls.sms_gateway_url),
            sms_gateway_token=os.environ.get("KRAVLAB_SMS_GATEWAY_TOKEN", cls.sms_gateway_token),
            channel_timeout_seconds=_seconds(
                "KRAVLAB_CHANNEL_TIMEOUT_SECONDS", cls.channel_timeout_seconds
            ),
            webhook_interval_seconds=_seconds(
                "KRAVLAB_WEBHOOK_INTERVAL_SECONDS", cls.webhook_interval_seconds
            ),
            job_stale_seconds=_seconds("KRAVLAB_JOB_STALE_SECONDS", cls.job_stale_seconds),
            max_import_bytes=_int("KRAVLAB_MAX_IMPORT_BYTES", cls.max_import_bytes),
            import_timeout_seconds=_seconds(
                "KRAVLAB_IMPORT_TIMEOUT_SECONDS", cls.import_timeout_seconds
            ),
            max_active_simulations=_int(
                "KRAVLAB_MAX_ACTIVE_SIMULATIONS", cls.max_active_simulations
            ),
            max_portfolio_tenants=_int("KRAVLAB_MAX_PORTFOLIO_TENANTS", cls.max_portfolio_tenants),
            models_kept=_int("KRAVLAB_MODELS_KEPT", cls.models_kept),
        )
        if settings.idempotency_ttl_hours < 24:
            raise SettingsError("KRAVLAB_IDEMPOTENCY_TTL_HOURS must be at least 24")
        if settings.max_import_bytes < 1:
            raise SettingsError("KRAVLAB_MAX_IMPORT_BYTES must be at least 1")
        for name, value in (
            ("KRAVLAB_MAX_ACTIVE_SIMULATIONS", settings.max_active_simulations),
            ("KRAVLAB_MAX_PORTFOLIO_TENANTS", settings.max_portfolio_tenants),
            ("KRAVLAB_MODELS_KEPT", settings.models_kept),
        ):
            if value < 1:
                raise SettingsError(f"{name} must be at least 1")
        if settings.db_pool_size < 1:
            raise SettingsError("KRAVLAB_DB_POOL_SIZE must be at least 1")
        if settings.smtp_tls not in SMTP_TLS_MODES:
            raise SettingsError(f"KRAVLAB_SMTP_TLS must be one of {', '.join(SMTP_TLS_MODES)}")
        if not 0 < settings.smtp_port < 65536:
            raise SettingsError("KRAVLAB_SMTP_PORT must be a TCP port (1-65535)")
        if settings.sms_gateway_url and urlparse(settings.sms_gateway_url).scheme not in (
            "http",
            "https",
        ):
            raise SettingsError("KRAVLAB_SMS_GATEWAY_URL must be an http(s) URL")
        return settings


def variables() -> list[str]:
    """Every environment variable the service reads, in the order the docs list them."""
    return [f.metadata["env"] for f in fields(Settings)]


@functools.cache
def get_settings() -> Settings:
    """The process's one settings object, read from the environment on first use.

    Entry points (the CLI, the uvicorn factory, an RQ job) call this instead of reading the
    environment again, so one process never runs on two configurations. Tests that change
    the environment call `get_settings.cache_clear()`.
    """
    return Settings.from_env()


def _check_database_url(url: str) -> None:
    if url.startswith("sqlite:///"):
        if url == "sqlite:///":
            raise SettingsError("DATABASE_URL names no SQLite file")
        return
    parsed = urlparse(url)
    if parsed.scheme in ("postgresql", "postgres") and parsed.path.strip("/"):
        return
    raise SettingsError(
        "DATABASE_URL must be sqlite:///path/file.sqlite3 or postgresql://user:pass@host:port/db"
    )


def _kept_secret(var_dir: Path) -> str:
    """Outside production a secret is generated once and kept, so restarts keep sessions."""
    path = var_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker wrote it first: use theirs
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    return secret
