"""The tenant scope: the one door to tenant-owned rows.

Handlers never query a tenant-owned table directly (a unit test walks the code to make sure);
they get a `TenantScope` from the request, whose every query carries `tenant = <id>`. A
row of another tenant is therefore simply not found, exactly like a missing one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from litestar.exceptions import NotFoundException
from piccolo.columns import Column
from piccolo.query import Count, Delete, Objects, Select, Update
from piccolo.table import Table

from tenants.access import Principal
from tenants.tables import Tenant


def _is_tenant_owned(table: type[Table]) -> bool:
    column = getattr(table, "tenant", None)
    return isinstance(column, Column) and column._meta.name == "tenant"


@dataclass(frozen=True)
class TenantScope:
    tenant_id: UUID
    currency: str
    country: str
    status: str
    principal: Principal

    @classmethod
    async def open(cls, tenant_id: UUID, principal: Principal) -> TenantScope:
        """The scope of `tenant_id` as this principal sees it; another tenant's is a 404."""
        if not principal.reaches(tenant_id):
            raise NotFoundException("tenant not found")
        row = await Tenant.select().where(Tenant.id == tenant_id).first()
        if row is None:
            raise NotFoundException("tenant not found")
        return cls(tenant_id, row["currency"], row["country"], row["status"], principal)

    def _own(self, table: type[Table]) -> Any:
        if not _is_tenant_owned(table):
            raise TypeError(f"{table.__name__} is not tenant-owned")
        return table.tenant == self.tenant_id  # type: ignore[attr-defined]

    def select(self, table: type[Table], *columns: Any) -> Select:
        return table.select(*columns).where(self._own(table))

    def objects(self, table: type[Table]) -> Objects:
        return table.objects().where(self._own(table))

    def count(self, table: type[Table]) -> Count:
        return table.count().where(self._own(table))

    def update(self, table: type[Table], values: dict[Any, Any]) -> Update:
        return table.update(values).where(self._own(table))

    def delete(self, table: type[Table]) -> Delete:
        return table.delete().where(self._own(table))

    async def get(self, table: type[Table], object_id: UUID, *columns: Any) -> dict[str, Any]:
        row = await self.select(table, *columns).where(table._meta.primary_key == object_id).first()
        if row is None:
            raise NotFoundException(f"{table._meta.tablename.rstrip('s')} not found")
        return row

    async def insert(self, table: type[Table], *rows: dict[str, Any]) -> None:
        """Insert rows with this scope's tenant stamped on each (any other is overwritten)."""
        self._own(table)
        await table.insert(*(table(**{**row, "tenant": self.tenant_id}) for row in rows))
