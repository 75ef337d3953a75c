"""The tenant scope: the one door to tenant-owned rows.

Handlers never query a tenant-owned table directly (a unit test walks the code to make sure);
they get a `TenantScope` from the request, whose every query carries `tenant = <id>`. A
row of another tenant is therefore simply not found, exactly like a missing one. The bulk
path (`tenants.bulk`) is the scope's too: its upserts stamp this tenant on every row, its
updates and lookups filter by it, and its lock is this tenant's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from litestar.exceptions import NotFoundException
from piccolo.query import Count, Delete, Objects, Select, Update
from piccolo.table import Table

from tenants import audit, bulk
from tenants.access import Principal
from tenants.tables import Tenant


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
        if not bulk.is_tenant_owned(table):
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

    async def upsert(
        self,
        table: type[Table],
        columns: Sequence[str],
        rows: Sequence[tuple[Any, ...]],
        conflict: Sequence[str],
        update: Sequence[str],
    ) -> None:
        """Bulk insert-or-update; `columns` names "tenant", and every row gets this tenant
        there whatever the caller put in it."""
        self._own(table)
        at = list(columns).index("tenant")
        stamped = [(*row[:at], self.tenant_id, *row[at + 1 :]) for row in rows]
        await bulk._upsert(table, columns, stamped, conflict, update)

    async def update_many(
        self,
        table: type[Table],
        key: str,
        columns: Sequence[str],
        rows: Sequence[tuple[Any, ...]],
    ) -> None:
        """`SET columns… WHERE key = …` per row (key value last), on this tenant's rows only."""
        self._own(table)
        await bulk._update_many(table, self.tenant_id, key, columns, rows)

    async def fetch_where_in(
        self, table: type[Table], columns: Sequence[str], column: str, values: Sequence[Any]
    ) -> list[dict[str, Any]]:
        """This tenant's rows whose `column` is one of `values` (one parameter, any count)."""
        self._own(table)
        return await bulk._fetch_where_in(table, columns, self.tenant_id, column, values)

    async def columns(
        self,
        table: type[Table],
        columns: Sequence[str],
        order_by: Sequence[str] = (),
        days: Sequence[str] = (),
        text: Sequence[str] = (),
    ) -> list[list[Any]]:
        """This tenant's rows of `table`, one list per column (inside `read_snapshot()` or a
        write transaction): the fast read of a whole book. Dates named in `days` come as
        day numbers since 1970-01-01, keys named in `text` as strings."""
        self._own(table)
        return await bulk._columns(table, self.tenant_id, columns, order_by, days, text)

    async def fold(self, table: type[Table], keys: Sequence[str], value: str) -> None:
        """Sum this tenant's rows of an additive table that share `keys` into one each
        (inside a write transaction; see `bulk._fold`)."""
        self._own(table)
        await bulk._fold(table, self.tenant_id, keys, value)

    async def lock(self, name: str) -> None:
        """Serialise this tenant's writers of `name` for the rest of the transaction."""
        await bulk._advisory_lock(f"{name}:{self.tenant_id}")

    async def audit(
        self, action: str, object_type: str, object_id: Any = None, **detail: Any
    ) -> None:
        """Record a change to this tenant by this scope's caller, in the change's transaction."""
        await audit.record(
            self.principal.actor, action, object_type, object_id, self.tenant_id, **detail
        )


@dataclass(frozen=True)
class AgencyScope:
    """The agency's door to every tenant's rows, for its own work across clients (the
    portfolio, the case queue): open only to agency staff; a tenant's credential gets 404."""

    principal: Principal

    @classmethod
    def open(cls, principal: Principal) -> AgencyScope:
        if principal.tenant_id is not None:
            raise NotFoundException("not found")
        return cls(principal)

    def select(self, table: type[Table], *columns: Any) -> Select:
        if not bulk.is_tenant_owned(table):
            raise TypeError(f"{table.__name__} is not tenant-owned")
        return table.select(*columns)

    async def tenant(self, tenant_id: UUID) -> TenantScope:
        """One tenant's scope, to change its rows (an agency principal reaches them all)."""
        return await TenantScope.open(tenant_id, self.principal)
