"""The composition root: `create_app()` wires every room's routes, auth, limits and docs."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import structlog
from litestar import Litestar, Request, get
from litestar.config.response_cache import ResponseCacheConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.middleware.rate_limit import RateLimitConfig, get_remote_address
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.stores.file import FileStore
from litestar.stores.registry import StoreRegistry

from backend import database, simulations
from backend.api.auth import AuthController
from backend.api.book import InvoiceController
from backend.api.cases import AgencyCaseController, CaseController
from backend.api.deps import provide_principal, provide_scope
from backend.api.dunning import AgencyCallController, DunningController
from backend.api.events import EventController
from backend.api.imports import ImportController
from backend.api.ops import Health
from backend.api.policies import PolicyController
from backend.api.portfolio import PortfolioSimulationController
from backend.api.reference_rates import ReferenceRateController
from backend.api.simulations import SimulationController
from backend.api.statuses import DocumentedStatuses
from backend.api.templates import TemplateController
from backend.api.tenants import AgencyAuditController, TenantController
from backend.api_docs import render_plugins, static_files
from backend.errors import EXCEPTION_HANDLERS, check_body
from backend.idempotency import IdempotencyMiddleware
from backend.queue import drain, run_periodic_in_process
from backend.settings import Settings, get_settings
from frontend_api.console import console_router, console_static, root
from frontend_api.controllers import DashboardController, PortfolioController
from tenants.access import Principal, authorize
from tenants.auth import BearerAuthMiddleware
from tenants.tables import Tenant
from tenants.throttle import Throttle

# Seconds in-process background jobs get to finish at shutdown, before the pool closes.
JOB_DRAIN_SECONDS = 2.0


@get("/health", opt={"public": True}, tags=["ops"], summary="Liveness and database check")
async def health() -> Health:
    await Tenant.count()
    return Health("ok")


def _rate_key(request: Request[Any, Any, Any]) -> str:
    """Who the caller turned out to be: one budget per API key or per user, however the
    header is spelled and however many session tokens a user holds; the address when the
    route takes no credential."""
    principal = request.scope.get("user")
    if isinstance(principal, Principal):
        return principal.actor
    return "addr:" + get_remote_address(request)


def _stores(settings: Settings) -> StoreRegistry:
    if settings.redis_url:
        from backend.limit_store import redis_limit_store

        store = redis_limit_store(settings.redis_url)  # fails open or closed: see there
        return StoreRegistry(default_factory=lambda name: store.with_namespace(name))
    # No Redis: files under var_dir, which every worker process of this machine shares, so
    # `--workers 2` does not double a limit (Redis is the store when processes span machines).
    root = settings.var_dir / "stores"

    def file_store(name: str) -> FileStore:
        (root / name).mkdir(parents=True, exist_ok=True)
        return FileStore(root / name)

    return StoreRegistry(default_factory=file_store)


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    engine = database.bind(settings)  # this app's database, decided here and not at import
    simulations.install_gate()  # nothing goes live unsimulated
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[settings.log_level.upper()]
        ),
        # Tracebacks without the frames' variables: those hold request headers and bodies
        # (API keys, session tokens, passwords), which a log must never carry.
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=True),
            structlog.dev.ConsoleRenderer(
                colors=False, exception_formatter=structlog.dev.plain_traceback
            ),
        ],
    )
    rate_limit = RateLimitConfig(
        rate_limit=("minute", settings.rate_limit_per_minute),
        identifier_for_request=_rate_key,
        exclude=["/schema", "/health"],
    )

    periodic: list[asyncio.Task[None]] = []

    async def start() -> None:
        await database.open_pool(engine, settings)
        if not settings.redis_url:  # else `kravlab worker` runs the periodic jobs
            periodic.append(asyncio.create_task(run_periodic_in_process(settings)))

    async def stop() -> None:
        # uvicorn has let in-flight requests finish (or cut them at its graceful timeout);
        # now the jobs stop and the pool closes, each with a bound, so shutdown cannot hang.
        for task in periodic:
            task.cancel()
        await asyncio.gather(*periodic, return_exceptions=True)
        await drain(JOB_DRAIN_SECONDS)
        await database.close_pool(engine)

    return Litestar(
        route_handlers=[
            health,
            AuthController,
            TenantController,
            AgencyAuditController,
            InvoiceController,
            ReferenceRateController,
            PolicyController,
            SimulationController,
            PortfolioSimulationController,
            DunningController,
            EventController,
            CaseController,
            AgencyCaseController,
            AgencyCallController,
            TemplateController,
            ImportController,
            PortfolioController,
            DashboardController,
            root,
            console_router(settings),
            console_static(),
            static_files(),
        ],
        dependencies={
            "settings": Provide(lambda: settings, sync_to_thread=False),
            "principal": Provide(provide_principal),
            "tenant": Provide(provide_scope),
        },
        guards=[_guard],
        before_request=check_body,
        # Authentication first, so the limit counts the caller it found, not a header's text.
        middleware=[
            DefineMiddleware(
                BearerAuthMiddleware,
                secret=settings.secret_key,
                failures=Throttle("auth_failures", settings.rate_limit_per_minute),
                # The console authenticates its own (a session cookie, or this same bearer).
                exclude=["^/schema", "^/health$", "^/api/v1/auth/login$", "^/console", "^/$"],
            ),
            rate_limit.middleware,
            IdempotencyMiddleware(
                settings.idempotency_ttl_hours,
                settings.idempotency_lock_seconds,
                settings.max_body_bytes,
            ),
        ],
        exception_handlers={**EXCEPTION_HANDLERS, **database.EXCEPTION_HANDLERS},
        request_max_body_size=settings.max_body_bytes,
        stores=_stores(settings),
        response_cache_config=ResponseCacheConfig(),
        openapi_config=OpenAPIConfig(
            title="kravlab",
            version="1",
            description="Multi-tenant dunning and collection API with credit-policy simulation.",
            path="/schema",
            render_plugins=render_plugins(),
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="An API key (kl_…) or a session token from /api/v1/auth/login",
                    )
                }
            ),
            security=[{"bearer": []}],
        ),
        plugins=[DocumentedStatuses()],
        on_startup=[start],
        on_shutdown=[stop],
        state=State({"settings": settings}),
    )


def _guard(connection: Any, handler: Any) -> None:
    # Routes the auth middleware skips (login, health, the OpenAPI docs) carry no user.
    if handler.opt.get("public") or "user" not in connection.scope:
        return
    authorize(connection, handler)
