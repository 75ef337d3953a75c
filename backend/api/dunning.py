"""The dunning run, its preview, an invoice's contacts and letters, and the tenant's profile."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

import msgspec
from litestar import Controller, Response, get, post, put
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, NotFoundException
from litestar.params import FromPath, JSONBody, PathParameter, QueryParameter
from msgspec import Meta, Struct

from backend import dunning, plans
from backend.book import today
from backend.channels.email import EmailChannel
from backend.channels.phone import CallOutcome
from backend.channels.sms import SmsChannel
from backend.settings import Settings
from backend.tables import DunningStep, Invoice, Letter, TenantProfile
from backend.validation import MULTI_LINE, FieldError, InvalidInput
from tenants.access import Principal
from tenants.scope import AgencyScope, TenantScope
from tenants.transactions import write_transaction

MinorUnits = Annotated[int, Meta(ge=0)]


class PlannedOut(Struct):
    invoice_id: UUID
    external_id: str
    ordinal: Annotated[int, Meta(ge=0, description="the invoice's k-th step, from 0")]
    policy_id: UUID
    version: int
    day: Annotated[int, Meta(description="days after the due date the policy set for it")]
    action: Literal["reminder", "collection_notice"]
    channel: Literal["email", "sms", "letter", "phone"]
    fee: MinorUnits
    fee_kind: Literal["reminder_fee", "collection_fee", "compensation"] | None
    fee_reason: str
    skipped: Annotated[bool, Meta(description="a pre-due step whose day passed: not sent")]


class EscalationOut(Struct):
    invoice_id: UUID
    external_id: str
    outstanding: MinorUnits


class PreviewOut(Struct):
    run_date: date
    contacts: int
    fees: MinorUnits
    steps: list[PlannedOut]
    escalations: list[EscalationOut]


class RunIn(Struct, forbid_unknown_fields=True):
    date: date | None = None


class RunOut(Struct):
    run_date: date
    recorded: int
    skipped: int
    escalated: int
    fees: MinorUnits
    already_run: bool
    delivery: dict[str, int]


class ContactOut(Struct):
    id: UUID
    ordinal: int
    run_date: date
    action: str
    channel: str
    fee: MinorUnits
    fee_kind: str | None
    status: Literal["pending", "sending", "retrying", "sent", "failed", "task", "skipped"]
    attempts: int
    last_error: str | None
    sent_at: datetime | None
    letter_id: UUID | None


class CallOutcomeIn(Struct, forbid_unknown_fields=True):
    outcome: Literal["reached", "promise_to_pay", "dispute", "no_answer"]
    promised_date: date | None = None
    note: Annotated[str, Meta(max_length=2000, pattern=MULTI_LINE)] = ""


class CallOutcomeOut(Struct):
    step_id: UUID
    outcome: str
    counted: Annotated[bool, Meta(description="whether the call counts as a contact made")]


class CallTaskOut(Struct):
    id: UUID
    tenant: UUID
    invoice: UUID
    invoice_external_id: str
    debtor_name: str
    phone: str | None
    action: str
    run_date: date


class PlanIn(Struct, forbid_unknown_fields=True):
    installments: Annotated[int, Meta(ge=2, le=36)]
    first_due: date
    interval_days: Annotated[int, Meta(ge=7, le=92)] = plans.DEFAULT_INTERVAL_DAYS


class InstalmentOut(Struct):
    number: int
    due_date: date
    amount: MinorUnits
    paid: MinorUnits


class PlanOut(Struct):
    id: UUID
    invoice_id: UUID
    status: Literal["active", "completed", "broken"]
    setup_fee: MinorUnits
    created_at: datetime
    ended_on: date | None
    instalments: list[InstalmentOut]


class ProfileIn(Struct, forbid_unknown_fields=True):
    org_number: Annotated[str, Meta(max_length=32, pattern=r"^[0-9A-Za-z-]*$")] = ""
    bankgiro: Annotated[str, Meta(pattern=r"^[0-9]{3,4}-[0-9]{4}$")] | None = None
    iban: Annotated[str, Meta(pattern=r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}$")] | None = None
    dispute_email: (
        Annotated[
            str,
            Meta(max_length=254, pattern=r"^[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+\.[^@\s\x00-\x1f]+$"),
        ]
        | None
    ) = None
    dispute_phone: Annotated[str, Meta(max_length=32, pattern=r"^\+?[0-9 -]{5,31}$")] | None = None
    language: Literal["sv", "en"] = "sv"


class ProfileOut(ProfileIn):
    pass


class RunInFuture(ClientException):
    status_code = 422


# Dates a preview or a run may take: the engine counts days from due dates and adds up to
# two years of steps to them, which must stay inside the calendar.
EARLIEST = date(2000, 1, 1)
LATEST_AHEAD_DAYS = 3660


def _within_calendar(on: date) -> date:
    if not EARLIEST <= on <= today() + timedelta(days=LATEST_AHEAD_DAYS):
        raise InvalidInput(
            [FieldError("date", f"from {EARLIEST.isoformat()} to ten years from today")]
        )
    return on


def channels_for(settings: Settings) -> dict[str, dunning.Channel]:
    return {
        "email": EmailChannel.from_settings(settings),
        "sms": SmsChannel.from_settings(settings),
    }


class DunningController(Controller):
    path = "/api/v1/tenants/{tenant_id:uuid}"
    tags = ["dunning"]

    @get("/dunning/preview", opt={"permission": "read"}, summary="What a run on a date would do")
    async def preview(
        self,
        tenant: NamedDependency[TenantScope],
        date: Annotated[date | None, QueryParameter(description="default: today")] = None,
    ) -> PreviewOut:
        planned = await dunning.plan(tenant, _within_calendar(date or today()))
        steps = [
            PlannedOut(**{name: getattr(s, name) for name in PlannedOut.__struct_fields__})
            for s in planned.steps
        ]
        return PreviewOut(
            planned.run_date,
            len(planned.contacts),
            sum(s.fee for s in planned.steps),
            steps,
            [EscalationOut(i, x, amount) for i, x, amount in planned.escalations],
        )

    @post(
        "/dunning/run",
        status_code=200,
        opt={"permission": "dunning:run", "body": RunIn},
        summary="Run the live policies now (also runs daily); idempotent for a date",
    )
    async def run(
        self,
        tenant: NamedDependency[TenantScope],
        settings: NamedDependency[Settings],
        data: JSONBody[RunIn | None] = None,
    ) -> RunOut:
        on = _within_calendar((data.date if data else None) or today())
        if on > today():
            raise RunInFuture("a run cannot be dated in the future: preview it instead")
        latest = await dunning.latest_run(tenant)
        if latest is not None and on < latest:
            raise RunInFuture(
                f"runs go forward: the last run was dated {latest.isoformat()}, so a run "
                "dated before it could only send later steps with earlier dates"
            )
        result = await dunning.run(tenant, on, channels_for(settings))
        return RunOut(**dataclasses.asdict(result))

    @get(
        "/invoices/{invoice_id:uuid}/contacts",
        opt={"permission": "read"},
        summary="The steps taken for an invoice, with their delivery",
    )
    async def contacts(
        self, tenant: NamedDependency[TenantScope], invoice_id: FromPath[UUID]
    ) -> list[ContactOut]:
        await tenant.get(Invoice, invoice_id, Invoice.id)
        steps = (
            await tenant.select(DunningStep)
            .where(DunningStep.invoice == invoice_id)
            .order_by(DunningStep.ordinal)
        )
        letters = {
            str(r["step"]): r["id"]
            for r in await tenant.select(Letter, Letter.id, Letter.step).where(
                Letter.invoice == invoice_id
            )
        }
        return [
            msgspec.convert(
                {**step, "letter_id": letters.get(str(step["id"]))}, ContactOut, strict=False
            )
            for step in steps
        ]

    @get(
        "/invoices/{invoice_id:uuid}/letters/{letter_file:str}",
        opt={"permission": "read"},
        media_type="application/pdf",
        summary="A letter as it was sent",
    )
    async def letter(
        self,
        tenant: NamedDependency[TenantScope],
        invoice_id: FromPath[UUID],
        letter_file: Annotated[str, PathParameter(max_length=64, description="{letter_id}.pdf")],
    ) -> Response[bytes]:
        # Litestar's path parameters fill whole segments: the ".pdf" is checked here.
        try:
            letter_id = UUID(letter_file.removesuffix(".pdf"))
        except ValueError:
            raise NotFoundException("letter not found") from None
        if not letter_file.endswith(".pdf"):
            raise NotFoundException("letter not found")
        row = (
            await tenant.select(Letter, Letter.pdf)
            .where((Letter.id == letter_id) & (Letter.invoice == invoice_id))
            .first()
        )
        if row is None:
            raise NotFoundException("letter not found")
        return Response(
            content=bytes(row["pdf"]),
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="{letter_id}.pdf"'},
        )

    @post(
        "/invoices/{invoice_id:uuid}/contacts/{step_id:uuid}/outcome",
        status_code=200,
        opt={"permission": "cases:work", "body": CallOutcomeIn},
        raises=[dunning.CallConflict],
        summary="Record what a phone step's call came to",
    )
    async def call_outcome(
        self,
        tenant: NamedDependency[TenantScope],
        invoice_id: FromPath[UUID],
        step_id: FromPath[UUID],
        data: JSONBody[CallOutcomeIn],
    ) -> CallOutcomeOut:
        step = await tenant.get(DunningStep, step_id, DunningStep.invoice)
        if str(step["invoice"]) != str(invoice_id):
            raise NotFoundException("contact not found")
        outcome = CallOutcome(
            outcome=data.outcome, promised_date=data.promised_date, note=data.note
        )
        return CallOutcomeOut(**await dunning.record_call(tenant, step_id, outcome))

    @post(
        "/invoices/{invoice_id:uuid}/payment-plan",
        opt={"permission": "invoices:manage", "body": PlanIn},
        raises=[plans.PlanConflict],
        summary="Split an unpaid invoice into instalments, within its policy's limits",
    )
    async def create_plan(
        self,
        tenant: NamedDependency[TenantScope],
        invoice_id: FromPath[UUID],
        data: JSONBody[PlanIn],
    ) -> PlanOut:
        made = await plans.create(
            tenant, invoice_id, data.installments, data.first_due, data.interval_days
        )
        return msgspec.convert(made, PlanOut)

    @get(
        "/invoices/{invoice_id:uuid}/payment-plan",
        opt={"permission": "read"},
        summary="The invoice's latest payment plan and what its instalments have had",
    )
    async def get_plan(
        self, tenant: NamedDependency[TenantScope], invoice_id: FromPath[UUID]
    ) -> PlanOut:
        return msgspec.convert(await plans.get(tenant, invoice_id), PlanOut)

    @get("/profile", opt={"permission": "read"}, summary="How letters name the tenant")
    async def profile(self, tenant: NamedDependency[TenantScope]) -> ProfileOut:
        row = await tenant.select(TenantProfile).first()
        return msgspec.convert(_profile_fields(row), ProfileOut) if row else ProfileOut()

    @put(
        "/profile",
        opt={"permission": "profile:manage", "body": ProfileIn},
        summary="Set how to pay and where to dispute, as letters and messages say it",
    )
    async def set_profile(
        self, tenant: NamedDependency[TenantScope], data: JSONBody[ProfileIn]
    ) -> ProfileOut:
        values = msgspec.structs.asdict(data)
        async with write_transaction():
            exists = await tenant.count(TenantProfile)
            if exists:
                await tenant.update(
                    TenantProfile,
                    {
                        **{getattr(TenantProfile, k): v for k, v in values.items()},
                        TenantProfile.updated_at: datetime.now().astimezone(),
                    },
                )
            else:
                await tenant.insert(
                    TenantProfile,
                    {"id": uuid4(), **values, "updated_at": datetime.now().astimezone()},
                )
            await tenant.audit("profile.changed", "tenant", tenant.tenant_id, **values)
        return msgspec.convert(values, ProfileOut)


def _profile_fields(row: dict[str, Any]) -> dict[str, Any]:
    return {name: row[name] for name in ProfileOut.__struct_fields__}


class AgencyCallController(Controller):
    path = "/api/v1/calls"
    tags = ["collection"]

    @get("/", opt={"permission": "cases:work"}, summary="Open call tasks of every tenant")
    async def calls(
        self,
        principal: NamedDependency[Principal],
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> list[CallTaskOut]:
        rows = await dunning.call_queue(AgencyScope.open(principal), limit)
        return msgspec.convert(rows, list[CallTaskOut])
