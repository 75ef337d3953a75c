"""The audit log: every state change, with who and when, written in the change's transaction."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from piccolo.query import Select

from tenants.pagination import decode_cursor_as, keyset_page, utc_moment
from tenants.tables import AuditEntry


async def record(
    actor: str,
    action: str,
    object_type: str,
    object_id: UUID | str | None = None,
    tenant_id: UUID | None = None,
    **detail: Any,
) -> None:
    """Call inside the write transaction of the change it records, so both land or neither."""
    await AuditEntry.insert(
        AuditEntry(
            tenant=tenant_id,
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=str(object_id) if object_id is not None else None,
            detail=json.dumps(detail, default=str, ensure_ascii=False, sort_keys=True),
            at=datetime.now(UTC),
        )
    )


def agency_entries() -> Select:
    """Entries about the agency itself (onboarding, offboarding): they belong to no tenant."""
    return AuditEntry.select().where(AuditEntry.tenant.is_null())


async def page(query: Select, limit: int, cursor: str | None) -> dict[str, Any]:
    """Newest first, keyset-paginated on (at, id)."""
    if cursor is not None:
        at, after = decode_cursor_as(cursor, utc_moment, UUID)
        query = query.where(
            (AuditEntry.at < at) | ((AuditEntry.at == at) & (AuditEntry.id < after))
        )
    rows, next_cursor = await keyset_page(
        query.order_by(AuditEntry.at, AuditEntry.id, ascending=False),
        limit,
        lambda r: (r["at"].isoformat(), r["id"]),
    )
    items = [
        {
            "id": r["id"],
            "actor": r["actor"],
            "action": r["action"],
            "object_type": r["object_type"],
            "object_id": r["object_id"],
            "detail": json.loads(r["detail"]),
            "at": r["at"],
        }
        for r in rows
    ]
    return {"items": items, "next_cursor": next_cursor}
