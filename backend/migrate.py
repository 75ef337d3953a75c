"""Apply Piccolo migrations of every app; safe to run again (applied ones are skipped)."""

from __future__ import annotations

import contextlib
import io

from piccolo.apps.migrations.commands.forwards import run_forwards


class MigrationError(RuntimeError):
    pass


async def migrate(verbose: bool = False) -> str:
    """Run pending migrations; returns Piccolo's report (printed by `kravlab migrate`)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = await run_forwards("all")
    if not result.success:
        raise MigrationError(result.message or out.getvalue())
    return out.getvalue() if verbose else ""
