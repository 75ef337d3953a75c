"""Offboarding as the service sees it: the tenant's rows (tenants.onboarding) and its files.

Rows go by the database's cascade; the files the service keeps for a tenant under
`KRAVLAB_VAR_DIR` do not: its saved models (`models/<tenant>/`), its book extracts
(`extracts/<tenant>/`) and the uploads of its history imports (`imports/<import>/`). They
hold the tenant's data too (per-debtor class weights, the arrays of its book), so erasing
the tenant erases them, after the rows are gone: a failure to offboard leaves the files of a
tenant that is still there, never the other way round.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from uuid import UUID

import structlog

from backend.imports import folder_of
from backend.settings import Settings
from backend.tables import Import
from backend.tenant_model import model_dir
from tenants import onboarding
from tenants.access import Principal
from tenants.scope import AgencyScope
from tenants.tables import Tenant

log = structlog.get_logger("kravlab.offboarding")

# A folder that names no tenant or import is left alone this long after its last change: an
# upload streams to its folder before its import's row exists, and a tenant onboarded while
# the sweep looks is not in the list it read.
ORPHAN_SECONDS = 24 * 3600


def tenant_folders(settings: Settings, tenant_id: UUID) -> list[Path]:
    """The folders under var_dir that hold only this tenant's files."""
    return [model_dir(settings, tenant_id), settings.var_dir / "extracts" / str(tenant_id)]


async def offboard(tenant_id: UUID, actor: Principal, settings: Settings) -> None:
    """Erase the tenant: its rows, then its files."""
    imports = (
        await AgencyScope.open(actor).select(Import, Import.id).where(Import.tenant == tenant_id)
    )
    await onboarding.offboard(tenant_id, actor)
    folders = [
        *tenant_folders(settings, tenant_id),
        *(folder_of(settings.var_dir, row["id"]) for row in imports),
    ]

    def remove() -> None:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)

    await asyncio.to_thread(remove)
    log.info("tenant files removed", tenant=str(tenant_id), folders=len(folders))


async def sweep(settings: Settings, actor: Principal) -> list[Path]:
    """Remove the folders under var_dir whose tenant or import is gone: what offboarding could
    not reach (a job still running wrote a model or an extract after the tenant was erased),
    and uploads whose request died before their import was recorded. The periodic
    `sweep_files` job; returns the folders removed."""
    tenants = {str(row["id"]) for row in await Tenant.select(Tenant.id)}
    known_imports = {
        str(row["id"]) for row in await AgencyScope.open(actor).select(Import, Import.id)
    }
    cutoff = time.time() - ORPHAN_SECONDS

    def remove() -> list[Path]:
        gone = []
        for kind, known in (
            ("models", tenants),
            ("extracts", tenants),
            ("imports", known_imports),
        ):
            root = settings.var_dir / kind
            for folder in root.iterdir() if root.is_dir() else []:
                if folder.is_dir() and folder.name not in known and folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder, ignore_errors=True)
                    gone.append(folder)
        return gone

    removed = await asyncio.to_thread(remove)
    if removed:
        log.info("orphaned files removed", folders=[str(f) for f in removed])
    return removed
