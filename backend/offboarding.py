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

log = structlog.get_logger("kravlab.offboarding")


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
