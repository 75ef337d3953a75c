"""The live dunning engine: each day, the next step of every open invoice under a live policy.

**Which step.** An invoice's steps are its contacts in order: the k-th step of its live policy
is taken once k steps are recorded for it and the step's day (counted from the due date) has
come. At most one step per invoice per run: after an outage the steps that came due meanwhile
are not stacked into one day; the earliest untaken one goes out on the first run, the next on
the next run whose date has reached its day, and so on, each with its own fee and text. A
step before the due date (a friendly nudge) whose day passed while the invoice was already
overdue when it came under the policy is recorded as `skipped`, not sent late. Nothing is
taken for paid, paused, disputed (or later: promised, planned, in collection) invoices.

**Exactly once.** A run holds the tenant's dunning lock, plans, and records every step it
takes in one transaction under the unique (invoice, ordinal) key, with the fee it charges,
*before* anything is sent. A crash before the commit leaves nothing; after it, the steps are
there and a retry or a second worker finds them and plans nothing more for those invoices.
Delivery follows from the recorded steps (the outbox): each attempt is counted before the
channel is called, and the step id goes to the provider (the email's X-Kravlab-Reference, the
SMS gateway's reference) so a provider can drop the duplicate of an attempt that crashed
between its acceptance and our record of it, the one window no local write can close.

**Escalation.** `escalate_after_days` after due, an invoice still unpaid is handed over to a
collection case (`backend.cases`) instead of taking a step; it then leaves the automated flow.

**Interest.** Each run also brings the late interest of every overdue invoice under a live
policy up to the run's date (`statement`: its payments split fees, interest, principal), kept
on the invoice; where a half-year's reference rate is missing it is stored as unknown (null)
and the agency's alert names the half-year, never a silent zero.

**Delivery.** A retryable failure (server down, timeout) is tried again with exponential
backoff; a permanent one (no address, refused) marks the step `failed`: it does not count
as sent and its fee is given back. Letters are rendered to PDF and stored with the step;
phone steps become call tasks for agency staff.

`plan` is what `GET /dunning/preview` shows and exactly what `run` then records.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID, uuid4

from litestar.exceptions import ClientException

from backend import book, cases, events, plans, policies, reference_rates, tenant_templates
from backend.channels import SendResult, permanent
from backend.channels.letters import render_letter
from backend.channels.message import (
    Creditor,
    DisputeContact,
    Interest,
    Message,
    PaymentInstructions,
)
from backend.channels.message import Debtor as MessageDebtor
from backend.channels.phone import CallOutcome, OutcomeError, check_outcome
from backend.fees import Charged, FeeDecision, FeeState, fee_for_step
from backend.interest import InterestTerms, ReferenceRates, late_interest
from backend.statement import statement
from backend.tables import DunningRun, DunningStep, Invoice, Letter, Payment, TenantProfile
from backend.validation import FieldError, InvalidInput
from simulator.policy import Policy
from simulator.rules import SWEDEN
from tenants.scope import AgencyScope, TenantScope
from tenants.transactions import write_transaction

# Steps may sit this many days before the due date (simulator.policy.DAY_RANGE).
EARLIEST_STEP_DAY = -90
MAX_ATTEMPTS = 8
# A claimed attempt whose worker died is open to another worker after this long.
CLAIM_TIMEOUT = timedelta(minutes=10)
BACKOFF_SECONDS = 60
MAX_BACKOFF = timedelta(hours=6)
# Days a reminder gives the debtor to pay before the next step.
REMINDER_PAY_DAYS = 10

STEP_COLUMNS = (
    "id",
    "tenant",
    "invoice",
    "ordinal",
    "run_date",
    "policy",
    "version",
    "step_index",
    "day",
    "action",
    "channel",
    "fee",
    "fee_kind",
    "status",
    "attempts",
    "created_at",
)


@dataclass(frozen=True)
class Planned:
    """One step a run on `run_date` takes (or, `skipped`, records without sending)."""

    invoice_id: UUID
    external_id: str
    ordinal: int
    policy_id: UUID
    version: int
    step_index: int
    day: int
    action: str
    channel: str
    fee: int
    fee_kind: str | None
    fee_reason: str
    skipped: bool = False


@dataclass
class Plan:
    run_date: date
    steps: list[Planned] = field(default_factory=list)
    # invoice id -> fees charged after this plan's steps, for the invoices it charges
    fees_after: dict[UUID, int] = field(default_factory=dict)
    # (invoice id, external id, outstanding) handed over to a collection case by this run
    escalations: list[tuple[UUID, str, int]] = field(default_factory=list)

    @property
    def contacts(self) -> list[Planned]:
        return [s for s in self.steps if not s.skipped]


class Channel(Protocol):
    async def send(
        self, message: Message, *, overrides: Any = None, reference: str | None = None
    ) -> SendResult: ...


async def plan(scope: TenantScope, on: date) -> Plan:
    """What a run on `on` does, read from the book as it stands."""
    result = Plan(on)
    live = await policies.live_set(scope)
    if not live:
        return result
    flowing = (Invoice.state == "active") | (
        (Invoice.state == "paused")
        & Invoice.paused_until.is_not_null()
        & (Invoice.paused_until < on)
    )
    rows = await scope.select(
        Invoice,
        Invoice.id,
        Invoice.external_id,
        Invoice.due_date,
        Invoice.amount,
        Invoice.paid_amount,
        Invoice.fee_agreed,
        Invoice.fees_charged,
        Invoice.debtor.type.as_alias("debtor_type"),
    ).where(
        Invoice.settled_date.is_null()
        & flowing
        & (Invoice.due_date <= on - timedelta(days=EARLIEST_STEP_DAY))
        & (Invoice.origin == "live")  # imported history is never worked (docs/imports.md)
    )
    if not rows:
        return result
    taken: dict[Any, int] = defaultdict(int)
    today_taken: set[Any] = set()  # invoices with a contact on or after `on`
    charged: dict[Any, Charged] = defaultdict(Charged)
    for taken_step in await scope.select(
        DunningStep,
        DunningStep.invoice,
        DunningStep.run_date,
        DunningStep.fee,
        DunningStep.fee_kind,
        DunningStep.status,
        DunningStep.action,
    ):
        invoice = str(taken_step["invoice"])
        taken[invoice] += 1
        # One contact per invoice per run, and never a step dated before one already taken:
        # a run dated in the past must not send later steps with earlier dates.
        if _day(taken_step["run_date"]) >= on and taken_step["status"] != "skipped":
            today_taken.add(invoice)
        if taken_step["fee_kind"] and taken_step["status"] != "failed":
            kind = taken_step["fee_kind"]
            previous = charged[invoice]
            charged[invoice] = Charged(
                **{
                    "reminder_fee": previous.reminder_fee,
                    "collection_fee": previous.collection_fee,
                    "compensation": previous.compensation,
                    kind: getattr(previous, kind) + taken_step["fee"],
                }
            )
    for row in rows:
        invoice = str(row["id"])
        chosen = policies.governing(live, row["debtor_type"], row["amount"])
        if chosen is None or invoice in today_taken:
            continue
        policy_id, version, policy = chosen
        days_past = (on - row["due_date"]).days
        escalate = policy.escalate_after_days
        if escalate is not None and days_past >= escalate:
            # handed over to the agency's staff: no more automated steps
            outstanding = max(0, row["amount"] - row["paid_amount"])
            result.escalations.append((UUID(invoice), row["external_id"], outstanding))
            continue
        ordinal = taken[invoice]
        state = FeeState(row["debtor_type"], row["fee_agreed"], row["due_date"], charged[invoice])
        while ordinal < len(policy.steps):
            step = policy.steps[ordinal]
            if step.day > days_past:
                break
            skipped = step.day < 0 < days_past
            decision = (
                FeeDecision(None, 0, "not_overdue")
                if skipped
                else fee_for_step(state, policy, step, on)
            )
            result.steps.append(
                Planned(
                    invoice_id=UUID(invoice),
                    external_id=row["external_id"],
                    ordinal=ordinal,
                    policy_id=UUID(str(policy_id)),
                    version=version,
                    step_index=ordinal,
                    day=step.day,
                    action=step.action,
                    channel=step.channel,
                    fee=decision.amount,
                    fee_kind=decision.kind,
                    fee_reason=decision.explanation,
                    skipped=skipped,
                )
            )
            if decision.amount:
                result.fees_after[UUID(invoice)] = row["fees_charged"] + decision.amount
            ordinal += 1
            if not skipped:
                break  # at most one contact per invoice per run
    return result


async def accrue_interest(scope: TenantScope, on: date) -> int:
    """Store each overdue invoice's outstanding late interest as of `on`; returns how many.

    Only invoices under a live policy: the policy says whether interest is statutory, by
    contract or not charged. Run in a write transaction of its own (after the run's).
    """
    live = await policies.live_set(scope)
    if not live:
        return 0
    rows = await scope.select(
        Invoice,
        Invoice.id,
        Invoice.due_date,
        Invoice.amount,
        Invoice.debtor.type.as_alias("debtor_type"),
    ).where(Invoice.settled_date.is_null() & (Invoice.due_date < on) & (Invoice.origin == "live"))
    if not rows:
        return 0
    ids = [r["id"] for r in rows]
    payments: dict[str, list[tuple[date, int]]] = defaultdict(list)
    for p in await scope.fetch_where_in(
        Payment, ("invoice", "paid_date", "amount"), "invoice", ids
    ):
        payments[str(p["invoice"])].append((_day(p["paid_date"]), p["amount"]))
    fees: dict[str, list[tuple[date, int]]] = defaultdict(list)
    for f in await scope.fetch_where_in(
        DunningStep, ("invoice", "run_date", "fee", "status"), "invoice", ids
    ):
        if f["fee"] and f["status"] != "failed":
            fees[str(f["invoice"])].append((_day(f["run_date"]), f["fee"]))
    rates = await reference_rates.load()
    updates = []
    for row in rows:
        chosen = policies.governing(live, row["debtor_type"], row["amount"])
        if chosen is None:
            continue
        key = str(row["id"])
        account = statement(
            row["amount"],
            row["due_date"],
            on,
            InterestTerms.of(chosen[2]),
            rates,
            fees=sorted(fees[key]),
            payments=sorted(payments[key]),
        )
        interest = account.owed.interest if account.interest_known else None
        updates.append((interest, on, row["id"]))
    await scope.update_many(Invoice, "id", ("interest_accrued", "interest_as_of"), updates)
    return len(updates)


def _day(value: date | str) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value


async def latest_run(scope: TenantScope) -> date | None:
    """The date of the tenant's latest run, if any: runs go forward from it."""
    row = (
        await scope.select(DunningRun, DunningRun.run_date)
        .order_by(DunningRun.run_date, ascending=False)
        .first()
    )
    return _day(row["run_date"]) if row else None


@dataclass(frozen=True)
class RunResult:
    run_date: date
    recorded: int  # contacts recorded by this call
    skipped: int
    escalated: int  # collection cases opened by this call
    fees: int  # minor units charged by this call
    already_run: bool  # a run for this date had been recorded before
    delivery: dict[str, int]


async def record(scope: TenantScope, on: date) -> tuple[Plan, bool]:
    """Plan and record the run of `on` in one transaction under the tenant's dunning lock."""
    now = datetime.now(UTC)
    async with write_transaction():
        await scope.lock("dunning")
        existing = await scope.select(DunningRun, DunningRun.id).where(DunningRun.run_date == on)
        planned = await plan(scope, on)
        rows = [
            (
                uuid4(),
                scope.tenant_id,
                s.invoice_id,
                s.ordinal,
                on,
                s.policy_id,
                s.version,
                s.step_index,
                s.day,
                s.action,
                s.channel,
                s.fee,
                s.fee_kind,
                "skipped" if s.skipped else ("task" if s.channel == "phone" else "pending"),
                0,
                now,
            )
            for s in planned.steps
        ]
        await scope.upsert(DunningStep, STEP_COLUMNS, rows, ("invoice", "ordinal"), ())
        await events.record_steps(scope, STEP_COLUMNS, rows)
        await scope.update_many(
            Invoice,
            "id",
            ("fees_charged",),
            [(total, invoice) for invoice, total in planned.fees_after.items()],
        )
        if existing:
            await scope.update(
                DunningRun, {DunningRun.steps: DunningRun.steps + len(planned.contacts)}
            ).where(DunningRun.run_date == on)
        else:
            await scope.insert(
                DunningRun,
                {
                    "id": uuid4(),
                    "run_date": on,
                    "status": "done",
                    "steps": len(planned.contacts),
                    "started_at": now,
                    "finished_at": now,
                },
            )
        await cases.open_cases(scope, [(i, amount) for i, _, amount in planned.escalations], on)
        await plans.check(scope, on)  # a missed instalment puts the invoice back in the flow
        if planned.contacts or planned.escalations:
            await scope.audit(
                "dunning.run",
                "dunning_run",
                None,
                run_date=on.isoformat(),
                contacts=len(planned.contacts),
                escalations=len(planned.escalations),
                fees=sum(s.fee for s in planned.steps),
            )
    return planned, bool(existing)


async def run(scope: TenantScope, on: date, channels: dict[str, Channel]) -> RunResult:
    """Record the run of `on`, then deliver what is waiting."""
    planned, already = await record(scope, on)
    # Interest has no bearing on which steps were taken: outside the run's lock, so the
    # tenant's next run or batch does not wait for it (71 of 121 s at 1 M invoices).
    async with write_transaction():
        await accrue_interest(scope, on)
    delivery = await deliver(scope, channels, on)
    return RunResult(
        run_date=on,
        recorded=len(planned.contacts),
        skipped=len(planned.steps) - len(planned.contacts),
        escalated=len(planned.escalations),
        fees=sum(s.fee for s in planned.steps),
        already_run=already,
        delivery=delivery,
    )


def _backoff(attempts: int) -> timedelta:
    return min(MAX_BACKOFF, timedelta(seconds=BACKOFF_SECONDS * 2 ** max(0, attempts - 1)))


async def deliver(scope: TenantScope, channels: dict[str, Channel], on: date) -> dict[str, int]:
    """Send every recorded contact that is due for an attempt; count the outcomes.

    Each attempt is claimed first (`sending`, with a deadline) by an update that only one
    worker can win, so two runs delivering at once never send the same step twice; a claim
    whose worker died opens again after `CLAIM_TIMEOUT`.
    """
    now = datetime.now(UTC)
    due = DunningStep.next_attempt_at.is_null() | (DunningStep.next_attempt_at <= now)
    waiting = await scope.select(DunningStep).where(
        (DunningStep.status.is_in(["pending", "retrying"]) & due)
        | ((DunningStep.status == "sending") & (DunningStep.next_attempt_at <= now))
    )
    counts: dict[str, int] = defaultdict(int)
    if not waiting:
        return dict(counts)
    context = await _context(scope)
    for step in waiting:
        if not await _claim(scope, step, now):
            counts["taken_by_another_run"] += 1
            continue
        outcome = await _send(scope, step, channels, context, on)
        counts[outcome] += 1
    return dict(counts)


async def _claim(scope: TenantScope, step: dict[str, Any], now: datetime) -> bool:
    async with write_transaction():
        claimed = (
            await scope.update(
                DunningStep,
                {
                    DunningStep.status: "sending",
                    DunningStep.attempts: DunningStep.attempts + 1,
                    DunningStep.next_attempt_at: now + CLAIM_TIMEOUT,
                },
            )
            .where(
                (DunningStep.id == step["id"])
                & (DunningStep.status == step["status"])
                & (DunningStep.attempts == step["attempts"])
            )
            .returning(DunningStep.id)
        )
    return bool(claimed)


@dataclass(frozen=True)
class _Context:
    creditor: Creditor
    payment: PaymentInstructions | None
    dispute: DisputeContact
    language: str
    rates: ReferenceRates
    overrides: dict[str, str]  # the tenant's own templates


async def _context(scope: TenantScope) -> _Context:
    from tenants.tables import Tenant

    tenant = await Tenant.select(Tenant.name).where(Tenant.id == scope.tenant_id).first()
    profile = await scope.select(TenantProfile).first()
    name = tenant["name"] if tenant else "?"
    payment = None
    dispute = DisputeContact()
    language = "sv"
    org = ""
    if profile is not None:
        org = profile["org_number"] or ""
        language = profile["language"] or "sv"
        if profile["bankgiro"] or profile["iban"]:
            payment = PaymentInstructions(
                bankgiro=profile["bankgiro"], iban=profile["iban"], reference="0"
            )
        dispute = DisputeContact(email=profile["dispute_email"], phone=profile["dispute_phone"])
    creditor = Creditor(tenant_id=str(scope.tenant_id), name=name, org_number=org)
    return _Context(
        creditor,
        payment,
        dispute,
        language,
        await reference_rates.load(),
        await tenant_templates.overrides(scope),
    )


async def message_for(
    scope: TenantScope, step: dict[str, Any], context: _Context, on: date
) -> Message | str:
    """The message of a recorded step, or why none can be made (a permanent failure)."""
    invoice = await scope.get(
        Invoice,
        step["invoice"],
        Invoice.external_id,
        Invoice.issue_date,
        Invoice.due_date,
        Invoice.amount,
        Invoice.paid_amount,
        Invoice.currency,
        Invoice.reference,
        Invoice.fees_charged,
        Invoice.debtor.name.as_alias("name"),
        Invoice.debtor.email.as_alias("email"),
        Invoice.debtor.phone.as_alias("phone"),
        Invoice.debtor.address.as_alias("address"),
    )
    if context.payment is None:
        return "the tenant's profile has no bankgiro or IBAN to pay to"
    policy = await _version_policy(scope, UUID(str(step["policy"])), step["version"])
    terms = InterestTerms.of(policy) if policy else InterestTerms()
    outstanding = max(0, invoice["amount"] - invoice["paid_amount"])
    sent_on = on
    accrued = late_interest(
        outstanding, invoice["due_date"], max(sent_on, invoice["due_date"]), terms, context.rates
    )
    rate = terms.annual_rate_bp(sent_on, context.rates)
    reference = "".join(c for c in (invoice["reference"] or invoice["external_id"]) if c.isalnum())
    if step["action"] == "collection_notice":
        deadline = policy.steps[step["step_index"]].deadline_days if policy else None
        pay_by = sent_on + timedelta(days=deadline or SWEDEN.min_collection_deadline_days)
        next_step = "enforcement"
    else:
        pay_by = sent_on + timedelta(days=REMINDER_PAY_DAYS)
        next_step = "collection_notice"
    fee = step["fee"] if step["fee_kind"] != "compensation" else 0
    compensation = step["fee"] if step["fee_kind"] == "compensation" else 0
    address = tuple(line for line in (invoice["address"] or "").splitlines() if line.strip())[:6]
    try:
        return Message(
            kind=step["action"],
            channel=step["channel"],
            language=context.language,  # type: ignore[arg-type]
            sent_on=sent_on,
            creditor=context.creditor,
            debtor=MessageDebtor(
                name=invoice["name"][:200],
                email=invoice["email"],
                phone=invoice["phone"],
                address=address,
            ),
            invoice_number=invoice["external_id"][:64],
            issue_date=invoice["issue_date"],
            due_date=invoice["due_date"],
            currency=invoice["currency"],
            amount=outstanding,
            fee=fee,
            fees_before=max(0, invoice["fees_charged"] - step["fee"]),
            compensation=compensation,
            interest=Interest(
                mode=terms.mode,
                accrued=accrued.amount,
                annual_rate_bp=rate,
                reference_rate_bp=context.rates.rate_bp(sent_on)
                if terms.mode == "statutory"
                else None,
                margin_bp=SWEDEN.statutory_margin_bp if terms.mode == "statutory" else None,
                from_date=invoice["due_date"],
                basis=outstanding,
            ),
            payment=PaymentInstructions(
                bankgiro=context.payment.bankgiro,
                iban=context.payment.iban,
                reference=(reference or "0")[:35],
            ),
            dispute=context.dispute,
            pay_by=pay_by,
            next_step=next_step,  # type: ignore[arg-type]
        )
    except Exception as exc:  # a message the data cannot make is a permanent failure
        return f"cannot build the message: {exc}"


async def _version_policy(scope: TenantScope, policy_id: UUID, number: int) -> Policy | None:
    """The policy of the version that recorded a step (it may have retired since)."""
    try:
        found = await policies.version(scope, policy_id, number)
    except Exception:  # deleted with its tenant's data: the message goes without it
        return None
    return policies.parse(found["policy"])


async def _send(
    scope: TenantScope,
    step: dict[str, Any],
    channels: dict[str, Channel],
    context: _Context,
    on: date,
) -> str:
    message = await message_for(scope, step, context, on)
    reference = str(step["id"])
    if isinstance(message, str):
        result = permanent(step["channel"], message)
    elif step["channel"] == "letter":
        try:
            pdf = render_letter(message, overrides=context.overrides)
        except Exception as exc:
            result = permanent("letter", f"not renderable: {exc}")
        else:
            async with write_transaction():
                await scope.insert(
                    Letter,
                    {
                        "id": uuid4(),
                        "invoice": step["invoice"],
                        "step": step["id"],
                        "pdf": pdf,
                        "created_at": datetime.now(UTC),
                    },
                )
            result = SendResult(status="sent", channel="letter", provider_id=None)
    else:
        channel = channels.get(step["channel"])
        if channel is None:
            result = SendResult(
                status="retryable", channel=step["channel"], reason="channel not configured"
            )
        else:
            result = await channel.send(message, overrides=context.overrides, reference=reference)
    return await _settle(scope, step, result)


async def _settle(scope: TenantScope, step: dict[str, Any], result: SendResult) -> str:
    now = datetime.now(UTC)
    attempts = step["attempts"] + 1
    async with write_transaction():
        where = DunningStep.id == step["id"]
        if result.sent:
            await scope.update(
                DunningStep,
                {
                    DunningStep.status: "sent",
                    DunningStep.sent_at: now,
                    DunningStep.provider_id: result.provider_id,
                    DunningStep.last_error: None,
                },
            ).where(where)
            await events.step_settled(scope, step, "sent")
            return "sent"
        if result.status == "retryable" and attempts < MAX_ATTEMPTS:
            await scope.update(
                DunningStep,
                {
                    DunningStep.status: "retrying",
                    DunningStep.next_attempt_at: now + _backoff(attempts),
                    DunningStep.last_error: (result.reason or "")[:500],
                },
            ).where(where)
            return "retrying"
        await scope.update(
            DunningStep,
            {DunningStep.status: "failed", DunningStep.last_error: (result.reason or "")[:500]},
        ).where(where)
        if step["fee"]:  # a contact that never went out charges nothing
            await scope.update(
                Invoice, {Invoice.fees_charged: Invoice.fees_charged - step["fee"]}
            ).where(Invoice.id == step["invoice"])
        await scope.audit(
            "dunning.failed",
            "invoice",
            step["invoice"],
            step=str(step["id"]),
            reason=(result.reason or "")[:200],
        )
        await events.step_settled(scope, step, "failed", result.reason)
        return "failed"


class CallConflict(ClientException):
    status_code = 409


async def record_call(scope: TenantScope, step_id: UUID, outcome: CallOutcome) -> dict[str, Any]:
    """What a phone step's call came to (phone.EFFECTS): reached or promised or disputed, it
    counts as a contact made; no answer does not (and gives its fee back). A promise pauses
    the flow until its date, so a broken one resumes it the day after; a dispute stops it."""
    step = await scope.get(
        DunningStep,
        step_id,
        DunningStep.id,
        DunningStep.invoice,
        DunningStep.channel,
        DunningStep.action,
        DunningStep.status,
        DunningStep.fee,
        DunningStep.attempts,
    )
    if step["channel"] != "phone" or step["status"] != "task":
        raise CallConflict(f"not an open call task (a {step['channel']} step, {step['status']})")
    today = datetime.now(UTC).date()
    try:
        check_outcome(outcome, today)
    except OutcomeError as exc:
        raise InvalidInput([FieldError(path, text) for path, text in exc.violations]) from exc
    made = outcome.outcome != "no_answer"
    await _settle(
        scope,
        {**step, "attempts": MAX_ATTEMPTS},
        SendResult(
            status="sent" if made else "permanent",
            channel="phone",
            provider_id=f"call:{outcome.outcome}",
            reason=None if made else "no answer",
        ),
    )
    reason = (outcome.note or outcome.outcome.replace("_", " "))[:1000]
    if outcome.outcome == "promise_to_pay":
        await book.change_state(scope, step["invoice"], "pause", reason, outcome.promised_date)
    elif outcome.outcome == "dispute":
        await book.change_state(scope, step["invoice"], "dispute", reason)
    return {"step_id": step_id, "outcome": outcome.outcome, "counted": made}


async def call_queue(scope: AgencyScope, limit: int) -> list[dict[str, Any]]:
    """Open call tasks of every tenant, oldest first: the staff's call list."""
    return await (
        scope.select(
            DunningStep,
            DunningStep.id,
            DunningStep.tenant,
            DunningStep.invoice,
            DunningStep.invoice.external_id.as_alias("invoice_external_id"),
            DunningStep.invoice.debtor.name.as_alias("debtor_name"),  # type: ignore[union-attr]
            DunningStep.invoice.debtor.phone.as_alias("phone"),  # type: ignore[union-attr]
            DunningStep.action,
            DunningStep.run_date,
        )
        .where((DunningStep.channel == "phone") & (DunningStep.status == "task"))
        .order_by(DunningStep.run_date)
        .order_by(DunningStep.id)
        .limit(limit)
    )
