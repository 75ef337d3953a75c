"""The `kravlab` command: serve, worker, migrate, admin, demo, import, sim."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.text import Text

from backend.settings import Settings, SettingsError, get_settings

# SIGTERM: uvicorn lets in-flight requests finish for this long, then the app's shutdown
# closes its jobs and connections with bounds of their own (backend.app), so `kravlab serve`
# exits within 10 seconds.
GRACEFUL_SHUTDOWN_SECONDS = 5

# Markup off: emails, settings values and error details may hold square brackets.
console = Console(markup=False, highlight=False)


def _error(message: str, detail: str = "") -> None:
    console.print(Text(message, style="red") + Text(detail))


def _serve(settings: Settings, host: str, port: int, workers: int | None = None) -> None:
    import uvicorn

    # No migration here: several API processes may start at once; `kravlab migrate` (or the
    # compose file's one-shot migrate service) runs them once before.
    uvicorn.run(
        "backend.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers or settings.workers,
        access_log=True,
        log_level=settings.log_level,
        proxy_headers=True,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


async def _migrate(settings: Settings, verbose: bool = False) -> None:
    from backend.migrate import migrate

    report = await migrate(verbose=verbose)
    if report:
        console.print(report)


async def _create_admin(email: str, password: str, role: str) -> None:
    from tenants.onboarding import create_agency_user

    user_id = await create_agency_user(email.strip().lower(), password, role)
    console.print(f"created {role} {email} ({user_id})")


async def _import(settings: Settings, slug: str, directory: str) -> int:
    """Load a history directory into a tenant's book with a progress bar (the loader of
    `POST /imports`, run here rather than in a job); 1 with every problem listed when the
    history is refused, nothing written."""
    from pathlib import Path
    from uuid import UUID

    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    from backend import database, imports
    from tenants.access import ROLE_GRANTS, Principal
    from tenants.scope import TenantScope
    from tenants.tables import Tenant

    engine = database.current()
    await database.open_pool(engine, settings)
    try:
        row = await Tenant.select(Tenant.id).where(Tenant.slug == slug).first()
        if row is None:
            _error("no tenant with the slug ", slug)
            return 1
        # The audit log names the command line as the actor (`cli:` and a nil id).
        operator = Principal(
            "cli", UUID(int=0), None, "agency_admin", grants=ROLE_GRANTS["agency_admin"]
        )
        scope = await TenantScope.open(row["id"], operator)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("validating", total=1.0)

            def show(stage: str, share: float) -> None:
                progress.update(task, description=stage, completed=share)

            try:
                import_id, loaded = await imports.load_directory(scope, Path(directory), show)
            except imports.ImportFailed as exc:
                progress.stop()
                _error(f"refused: {exc.problems.count} problem(s), nothing was loaded")
                for problem in exc.problems.listed:
                    console.print(str(problem))
                if exc.problems.count > len(exc.problems.listed):
                    console.print(f"... and {exc.problems.count - len(exc.problems.listed)} more")
                return 1
            progress.update(task, description="done", completed=1.0)
        console.print(
            f"imported {loaded.invoices} invoices, {loaded.payments} payments and "
            f"{loaded.contacts} contacts into {slug} (import {import_id})"
        )
        return 0
    finally:
        await database.close_pool(engine)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kravlab", description="kravlab: dunning, collection and policy simulation"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve", help="run the API server (production: several workers, access log)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=None, help="default: KRAVLAB_WORKERS")

    worker = commands.add_parser(
        "worker", help="run an RQ worker with its scheduler (needs REDIS_URL)"
    )
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    worker.add_argument(
        "--queues",
        choices=("all", "kravlab"),
        default="all",
        help="all: kravlab, then kravlab-simulations when it is empty (default); kravlab: "
        "never a model fit or simulation (run one beside an 'all' worker so ingest's jobs "
        "never wait behind a simulation)",
    )

    migrate = commands.add_parser("migrate", help="apply database migrations (idempotent)")
    migrate.add_argument("--verbose", action="store_true")

    admin = commands.add_parser("admin", help="agency users")
    admin_commands = admin.add_subparsers(dest="admin_command", required=True)
    create = admin_commands.add_parser("create", help="create an agency admin (or staff)")
    create.add_argument("--email", required=True)
    create.add_argument("--password", required=True)
    create.add_argument("--role", choices=["agency_admin", "agency_staff"], default="agency_admin")

    demo = commands.add_parser("demo", help="migrate, seed demo data, print logins, serve")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--no-serve", action="store_true", help="seed and print, do not serve")

    load = commands.add_parser(
        "import", help="load a payment history (formats §1) into a tenant's book, all or nothing"
    )
    load.add_argument("--tenant", required=True, metavar="SLUG")
    load.add_argument("dir", help="a directory with invoices.csv, payments.csv (and actions.csv)")

    from simulator import cli as simulator_cli

    simulator_cli.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "sim":  # needs no service settings or database
        from simulator import cli as simulator_cli

        return simulator_cli.run(args)
    try:
        settings = get_settings()
    except SettingsError as exc:
        _error("configuration error: ", str(exc))
        return 2
    from tenants.onboarding import ConflictError

    try:
        if args.command == "serve":
            _serve(settings, args.host, args.port, args.workers)
        elif args.command == "worker":
            if not settings.redis_url:
                _error(
                    "kravlab worker needs REDIS_URL", " (without it jobs run in the API process)"
                )
                return 2
            from backend.queue import QUEUE_NAME, WORKER_QUEUES, run_worker

            queues = WORKER_QUEUES if args.queues == "all" else (QUEUE_NAME,)
            run_worker(settings, burst=args.burst, queues=queues)
        elif args.command == "migrate":
            asyncio.run(_migrate(settings, verbose=args.verbose))
            console.print("migrations applied")
        elif args.command == "admin":
            if len(args.password) < 12:
                _error("the password must be at least 12 characters")
                return 2
            asyncio.run(_migrate(settings))
            asyncio.run(_create_admin(args.email, args.password, args.role))
        elif args.command == "demo":
            from backend.demo import print_credentials, seed

            asyncio.run(_migrate(settings))
            credentials = asyncio.run(seed(settings))
            print_credentials(console, credentials, args.host, args.port)
            if not args.no_serve:
                _serve(settings, args.host, args.port, workers=1)
        elif args.command == "import":
            return asyncio.run(_import(settings, args.tenant, args.dir))
    except ConflictError as exc:
        _error(exc.detail)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
