"""Collection cases: the agency's work queue across tenants, and each tenant's own cases."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from msgspec import Meta, Struct

from backend import cases
from backend.api.deps import Cursor, Limit
from backend.api.page import Page
from backend.validation import MULTI_LINE
from tenants.access import Principal
from tenants.scope import AgencyScope, TenantScope

CaseStatus = Literal["open", "closed"]
StatusFilter = Annotated[CaseStatus | None, QueryParameter(description="open or closed")]


class CaseOut(Struct):
    id: UUID
    tenant_id: UUID
    invoice_id: UUID
    invoice_external_id: str
    debtor_name: str
    amount: Annotated[int, Meta(ge=0, description="outstanding when the case opened")]
    opened_on: date
    status: CaseStatus
    outcome: Literal["paid", "plan", "written_off", "enforcement"] | None
    assignee: UUID | None
    closed_at: datetime | None


class NoteOut(Struct):
    author: str
    text: str
    at: datetime


class CaseDetail(CaseOut):
    notes: list[NoteOut]


class AssignIn(Struct, forbid_unknown_fields=True):
    assignee: UUID | None


class NoteIn(Struct, forbid_unknown_fields=True):
    text: Annotated[str, Meta(min_length=1, max_length=4000, pattern=MULTI_LINE)]


class CloseIn(Struct, forbid_unknown_fields=True):
    outcome: Literal["paid", "plan", "written_off", "enforcement"]


class AgencyCaseController(Controller):
    path = "/api/v1/cases"
    tags = ["collection"]

    @get("/", opt={"permission": "cases:work"}, summary="Every tenant's cases: the work queue")
    async def queue(
        self,
        principal: NamedDependency[Principal],
        status: StatusFilter = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[CaseOut]:
        items, next_cursor = await cases.agency_page(
            AgencyScope.open(principal), status, limit, cursor
        )
        return Page(msgspec.convert(items, list[CaseOut]), next_cursor)


class CaseController(Controller):
    path = "/api/v1/tenants/{tenant_id:uuid}/cases"
    tags = ["collection"]

    @get("/", opt={"permission": "read"}, summary="The tenant's collection cases")
    async def list_cases(
        self,
        tenant: NamedDependency[TenantScope],
        status: StatusFilter = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[CaseOut]:
        items, next_cursor = await cases.tenant_page(tenant, status, limit, cursor)
        return Page(msgspec.convert(items, list[CaseOut]), next_cursor)

    @get("/{case_id:uuid}", opt={"permission": "read"}, summary="A case and its notes")
    async def get_case(
        self, tenant: NamedDependency[TenantScope], case_id: FromPath[UUID]
    ) -> CaseDetail:
        return msgspec.convert(await cases.get(tenant, case_id), CaseDetail)

    @post(
        "/{case_id:uuid}/assign",
        status_code=200,
        opt={"permission": "cases:work", "body": AssignIn},
        summary="Give the case to an agency user (null: nobody)",
    )
    async def assign(
        self,
        tenant: NamedDependency[TenantScope],
        case_id: FromPath[UUID],
        data: JSONBody[AssignIn],
    ) -> CaseDetail:
        return msgspec.convert(await cases.assign(tenant, case_id, data.assignee), CaseDetail)

    @post(
        "/{case_id:uuid}/notes",
        status_code=200,
        opt={"permission": "cases:work", "body": NoteIn},
        summary="Add a note",
    )
    async def add_note(
        self,
        tenant: NamedDependency[TenantScope],
        case_id: FromPath[UUID],
        data: JSONBody[NoteIn],
    ) -> CaseDetail:
        return msgspec.convert(await cases.note(tenant, case_id, data.text), CaseDetail)

    @post(
        "/{case_id:uuid}/close",
        status_code=200,
        opt={"permission": "cases:work", "body": CloseIn},
        raises=[cases.CaseConflict],
        summary="Close: paid, plan, written off or sent to enforcement",
    )
    async def close(
        self,
        tenant: NamedDependency[TenantScope],
        case_id: FromPath[UUID],
        data: JSONBody[CloseIn],
    ) -> CaseDetail:
        return msgspec.convert(await cases.close(tenant, case_id, data.outcome), CaseDetail)
