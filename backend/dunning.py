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
policy up to the run's date, kept on the invoice: in SQL for the invoices without payments
(`accrue_interest`), through `statement` (its payments split fees, interest, principal) for
the others; where a half-year's reference rate is missing it is stored as unknown (null)
and the agency's alert names the half-year, never a silent zero.

**Delivery.** Claimed in batches, sent with bounded concurrency, settled in one
transaction per batch (`deliver`). A retryable failure (server down, timeout) is tried
again with exponential backoff; a permanent one (no address, refused) marks the step
`failed`: it does not count as sent and its fee is given back. Letters are rendered to PDF
and stored with the step by a job of their own (`deliver_letters`, queued by the run);
phone steps become call tasks for agency staff.

**Which invoices.** Only those pushed by the ERP (`origin = 'live'`); history an import
loaded (`origin = 'import'`) is the simulator's and is never dunned.

`plan` is what `GET /dunning/preview` shows and exactly what `run` then records.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID, uuid4

import structlog
from litestar.exceptions import ClientException
from piccolo.columns.combination import WhereRaw
from piccolo.query.methods.select import SelectRaw
from piccolo.querystring import QueryString

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
from backend.events import EventKind
from backend.fees import Charged, FeeDecision, FeeState, fee_for_step
from backend.interest import DENOMINATOR, InterestTerms, ReferenceRates, late_interest, rate_days
from backend.statement import statement
from backend.tables import DunningRun, DunningStep, Invoice, Letter, Payment, TenantProfile
from backend.validation import FieldError, InvalidInput
from simulator.policy import Policy, Segment
from simulator.rules import SWEDEN
from tenants.scope import AgencyScope, TenantScope
from tenants.transactions import write_transaction

log = structlog.get_logger("kravlab.dunning")

# Steps may sit this many days before the due date (simulator.policy.DAY_RANGE).
EARLIEST_STEP_DAY = -90
MAX_ATTEMPTS = 8
# A claimed attempt whose worker died is open to another worker after this long.
CLAIM_TIMEOUT = timedelta(minutes=10)
BACKOFF_SECONDS = 60
MAX_BACKOFF = timedelta(hours=6)
# Days a reminder gives the debtor to pay before the next step.
REMINDER_PAY_DAYS = 10
# Delivery claims this many steps at once and has at most SEND_CONCURRENCY of them under
# way with a provider at a time (SMTP sends run in worker threads, SMS over one HTTP client).
DELIVERY_BATCH = 500
SEND_CONCURRENCY = 16
# What the run delivers itself; letters are rendered by their own job (`deliver_letters`).
ELECTRONIC = ("email", "sms")
FEE_KINDS = ("reminder_fee", "collection_fee", "compensation")  # Charged's fields, in order
# Ids per `IN (…)` list: well under PostgreSQL's 32 767 parameters of one statement.
IN_CHUNK = 5000

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
LETTER_COLUMNS = ("id", "tenant", "invoice", "step", "pdf", "created_at")
# What delivery reads of a step it claims.
STEP_READ = (
    DunningStep.id,
    DunningStep.invoice,
    DunningStep.run_date,
    DunningStep.policy,
    DunningStep.version,
    DunningStep.step_index,
    DunningStep.action,
    DunningStep.channel,
    DunningStep.fee,
    DunningStep.fee_kind,
    DunningStep.status,
    DunningStep.attempts,
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


def _live_invoices() -> Any:
    """Invoices the engine works: pushed by the ERP (`origin = 'live'`), not history loaded by
    an import, which the simulator learns from and nobody dunns."""
    return Invoice.origin == "live"


def _amount_within(segment: Segment) -> QueryString:
    """The segment's amount bounds as SQL."""
    if segment.max_amount is None:
        return QueryString("invoices.amount >= {}", segment.min_amount)
    return QueryString(
        "invoices.amount >= {} AND invoices.amount <= {}", segment.min_amount, segment.max_amount
    )


def _takes(segment: Segment, debtor_type: str) -> QueryString:
    """SQL true for the invoices `segment` takes; `debtor_type` names the joined debtor's
    type column of the query it goes into."""
    if segment.debtor_type is None:
        return _amount_within(segment)
    return QueryString(
        "{} AND " + debtor_type + " = {}", _amount_within(segment), segment.debtor_type
    )


def _ors(parts: Sequence[QueryString]) -> QueryString:
    if not parts:
        return QueryString("1 = 0")
    return QueryString("(" + " OR ".join("({})" for _ in parts) + ")", *parts)


def _reach_escalation(live: list[tuple[UUID, int, Policy]], on: date, debtor_type: str) -> Any:
    """SQL true for the invoices whose policy hands them to a case by `on`."""
    return WhereRaw(
        "{}",
        _ors(
            [
                QueryString(
                    "{} AND invoices.due_date <= {}",
                    _takes(p.segment, debtor_type),
                    on - timedelta(days=p.escalate_after_days),
                )
                for _, _, p in live
                if p.escalate_after_days is not None
            ]
        ),
    )


def _due_a_step(live: list[tuple[UUID, int, Policy]], on: date, debtor_type: str) -> Any:
    """SQL true for the invoices due a step on `on` (escalation aside, checked first).

    With N the number of an invoice's policy's steps whose day has come by `on` (steps are in
    day order: the first N), it is due a step when fewer than N are recorded, that is when it
    has no step of ordinal N - 1 (ordinals run 0, 1, … without gaps). One anti-join against
    the unique (invoice, ordinal) index answers that for every open invoice at once, so the
    run never reads the history of the invoices that are done for today.
    """
    branches: list[QueryString] = []
    for _, _, policy in live:
        if not policy.steps:
            continue
        # the last step whose day has come: its ordinal is N - 1
        last = " ".join(
            "WHEN invoices.due_date <= {} THEN " + str(k)
            for k in reversed(range(len(policy.steps)))
        )
        thresholds = [on - timedelta(days=s.day) for s in reversed(policy.steps)]
        branches.append(
            QueryString(
                "WHEN {} THEN CASE " + last + " END",
                _takes(policy.segment, debtor_type),
                *thresholds,
            )
        )
    if not branches:
        return WhereRaw("1 = 0")
    ordinal = QueryString("CASE " + " ".join("{}" for _ in branches) + " END", *branches)
    return WhereRaw(
        "{} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM dunning_steps s "
        "WHERE s.invoice = invoices.id AND s.ordinal = {})",
        ordinal,
        ordinal,
    )


# An invoice's history as `plan` needs it: its steps so far, its latest contact and the
# fees charged; read for the invoices that may act only, a chunk of them per query.
_HISTORY = (
    SelectRaw("count(*) AS taken"),
    SelectRaw("max(CASE WHEN status <> 'skipped' THEN run_date END) AS last_contact"),
    *(
        SelectRaw(
            f"sum(CASE WHEN fee_kind = '{kind}' AND status <> 'failed' THEN fee ELSE 0 END) "
            f"AS {kind}"
        )
        for kind in ("reminder_fee", "collection_fee", "compensation")
    ),
)


async def _histories(scope: TenantScope, invoices: list[Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(invoices), IN_CHUNK):
        chunk = invoices[start : start + IN_CHUNK]
        for row in (
            await scope.select(DunningStep, DunningStep.invoice, *_HISTORY)
            .where(DunningStep.invoice.is_in(chunk))
            .group_by(DunningStep.invoice)
        ):
            found[str(row["invoice"])] = row
    return found


async def plan(scope: TenantScope, on: date) -> Plan:
    """What a run on `on` does, read from the book as it stands.

    SQL finds the open invoices that may act today, those reaching escalation and those due
    a step (`_due_a_step`), and brings their histories; the rules below then decide exactly.
    """
    result = Plan(on)
    live = await policies.live_set(scope)
    if not live:
        return result
    debtor_type = Invoice.debtor.type
    type_sql = debtor_type._meta.get_full_name(with_alias=False)
    flowing = (Invoice.state == "active") | (
        (Invoice.state == "paused")
        & Invoice.paused_until.is_not_null()
        & (Invoice.paused_until < on)
    )
    base = (
        Invoice.settled_date.is_null()
        & flowing
        & _live_invoices()
        & (Invoice.due_date <= on - timedelta(days=EARLIEST_STEP_DAY))
    )
    columns = (
        Invoice.id,
        Invoice.external_id,
        Invoice.due_date,
        Invoice.amount,
        Invoice.paid_amount,
        Invoice.fee_agreed,
        Invoice.fees_charged,
        debtor_type.as_alias("debtor_type"),
    )
    rows = {
        str(r["id"]): r
        for query in (_reach_escalation(live, on, type_sql), _due_a_step(live, on, type_sql))
        for r in await scope.select(Invoice, *columns).where(base & query)
    }
    histories = await _histories(scope, [r["id"] for r in rows.values()])
    nothing = {"taken": 0, "last_contact": None} | {k: 0 for k in FEE_KINDS}
    for key in sorted(rows, key=lambda k: (rows[k]["due_date"], k)):
        row = rows[key]
        history = histories.get(key, nothing)
        chosen = policies.governing(live, row["debtor_type"], row["amount"])
        # One contact per invoice per run, and never a step dated before one already taken:
        # a run dated in the past must not send later steps with earlier dates.
        last = history["last_contact"]
        if chosen is None or (last is not None and _day(last) >= on):
            continue
        invoice = UUID(key)
        policy_id, version, policy = chosen
        days_past = (on - _day(row["due_date"])).days
        escalate = policy.escalate_after_days
        if escalate is not None and days_past >= escalate:
            # handed over to the agency's staff: no more automated steps
            outstanding = max(0, row["amount"] - row["paid_amount"])
            result.escalations.append((invoice, row["external_id"], outstanding))
            continue
        ordinal = int(history["taken"])
        charged = Charged(*(int(history[k] or 0) for k in FEE_KINDS))
        state = FeeState(row["debtor_type"], row["fee_agreed"], _day(row["due_date"]), charged)
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
                    invoice_id=invoice,
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
                result.fees_after[invoice] = row["fees_charged"] + decision.amount
            ordinal += 1
            if not skipped:
                break  # at most one contact per invoice per run
    return result


async def accrue_interest(scope: TenantScope, on: date) -> None:
    """Bring each overdue invoice's late interest up to `on`.

    Only invoices under a live policy (the policy says whether interest is statutory, by
    contract or not charged), and of those only the ones not yet brought to `on` (a second
    run the same day writes nothing again), whose figure is unknown (a reference rate added
    since fills it in) or that have payments (recomputed every run: a payment changes the
    split). A policy or an amount changed during the day shows from the next day's run.

    An invoice without payments owes interest on its whole amount from the due date, so its
    figure is `amount × Σ rate × days`, rounded once (`interest.rate_days`): one UPDATE per
    due date (and interest terms) computes it in the database for all of them, exactly the
    figure `statement` gives. The few with payments go through `statement`, which splits
    each payment over fees, interest and principal. Run in a write transaction of its own
    (after the run's).
    """
    live = await policies.live_set(scope)
    if not live:
        return
    rates = await reference_rates.load()
    open_overdue = Invoice.settled_date.is_null() & _live_invoices() & (Invoice.due_date < on)
    behind = (
        Invoice.interest_as_of.is_null()
        | (Invoice.interest_as_of != on)
        | Invoice.interest_accrued.is_null()
    )
    due_dates = sorted(
        {
            _day(r["due_date"])
            for r in await scope.select(Invoice, Invoice.due_date)
            .where(open_overdue & behind & (Invoice.paid_amount == 0))
            .distinct()
        }
    )
    by_terms: dict[InterestTerms, list[Segment]] = defaultdict(list)
    for _, _, policy in live:
        by_terms[InterestTerms.of(policy)].append(policy.segment)
    in_sql = Invoice.paid_amount == 0
    by_statement: set[date] = set()  # due dates whose products could overflow 64 bits
    for terms, segments in by_terms.items():
        # Live segments never overlap; when one set of terms takes every invoice there is
        # nothing to tell apart, and the UPDATE needs no look at the debtors.
        governed = (
            None
            if len(by_terms) == 1 and _cover_everything(segments)
            else WhereRaw("{}", _ors([_segment_sql(s) for s in segments]))
        )
        for due in due_dates:
            numerator = rate_days(due, on, terms, rates)
            if numerator is not None and numerator > SQL_MAX_RATE_DAYS:
                by_statement.add(due)
                continue
            value = (
                QueryString("CASE WHEN amount = 0 THEN 0 ELSE NULL END")
                if numerator is None
                else QueryString(
                    "(2 * amount * {} + {}) / {}", numerator, DENOMINATOR, 2 * DENOMINATOR
                )
            )
            where = (
                open_overdue
                & behind
                & in_sql
                & (Invoice.amount <= SQL_MAX_AMOUNT)
                & (Invoice.due_date == due)
            )
            await scope.update(
                Invoice, {Invoice.interest_accrued: value, Invoice.interest_as_of: on}
            ).where(where if governed is None else where & governed)
    rest = (Invoice.paid_amount != 0) | (Invoice.amount > SQL_MAX_AMOUNT)
    if by_statement:
        rest = rest | Invoice.due_date.is_in(sorted(by_statement))
    await _accrue_with_payments(scope, on, live, rates, open_overdue & rest)


# The SQL figure 2 × amount × Σ rate × days + DENOMINATOR stays within a signed 64-bit
# integer (PostgreSQL's bigint, SQLite's integer) for amounts up to a billion kronor over
# Σ rate × days up to 4.6e7 (a 100 % contract rate for 12 years); beyond either the
# invoice goes through `statement` instead.
SQL_MAX_AMOUNT = 10**11
SQL_MAX_RATE_DAYS = (2**63 - 1 - DENOMINATOR) // (2 * SQL_MAX_AMOUNT)


DEBTOR_TYPES = ("b2b", "b2c")


def _segment_sql(segment: Segment) -> QueryString:
    """SQL true for the invoices a policy's segment takes, in an UPDATE (no join there)."""
    if segment.debtor_type is None:
        return _amount_within(segment)
    return QueryString(
        "{} AND EXISTS (SELECT 1 FROM debtors d WHERE d.id = invoices.debtor AND d.type = {})",
        _amount_within(segment),
        segment.debtor_type,
    )


def _cover_everything(segments: list[Segment]) -> bool:
    """Whether these segments together take every invoice of every debtor type."""
    for debtor_type in DEBTOR_TYPES:
        reached = 0  # every amount below this is taken
        for segment in sorted(
            (s for s in segments if s.debtor_type in (None, debtor_type)),
            key=lambda s: s.min_amount,
        ):
            if segment.min_amount > reached:
                return False
            if segment.max_amount is None:
                reached = -1
                break
            reached = max(reached, segment.max_amount + 1)
        if reached != -1:
            return False
    return True


async def _accrue_with_payments(
    scope: TenantScope,
    on: date,
    live: list[tuple[UUID, int, Policy]],
    rates: ReferenceRates,
    where: Any,
) -> int:
    """Interest of the open invoices with payments: each payment split by `statement`."""
    rows = await scope.select(
        Invoice,
        Invoice.id,
        Invoice.due_date,
        Invoice.amount,
        Invoice.debtor.type.as_alias("debtor_type"),
    ).where(where)
    if not rows:
        return 0
    ids = [r["id"] for r in rows]
    payments: dict[str, list[tuple[date, int]]] = defaultdict(list)
    fees: dict[str, list[tuple[date, int]]] = defaultdict(list)
    for chunk in range(0, len(ids), IN_CHUNK):
        part = ids[chunk : chunk + IN_CHUNK]
        for p in await scope.select(
            Payment, Payment.invoice, Payment.paid_date, Payment.amount
        ).where(Payment.invoice.is_in(part)):
            payments[str(p["invoice"])].append((_day(p["paid_date"]), p["amount"]))
        for f in await scope.select(
            DunningStep, DunningStep.invoice, DunningStep.run_date, DunningStep.fee
        ).where(
            DunningStep.invoice.is_in(part)
            & (DunningStep.fee > 0)
            & (DunningStep.status != "failed")
        ):
            fees[str(f["invoice"])].append((_day(f["run_date"]), f["fee"]))
    updates = []
    for row in rows:
        chosen = policies.governing(live, row["debtor_type"], row["amount"])
        if chosen is None:
            continue
        key = str(row["id"])
        account = statement(
            row["amount"],
            _day(row["due_date"]),
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


async def run(
    scope: TenantScope, on: date, channels: dict[str, Channel], *, letters_now: bool = False
) -> RunResult:
    """Record the run of `on`, bring interest up to date, deliver the email and SMS that are
    waiting, and hand the letters to their own job (`jobs.render_letters`), or make them
    here with `letters_now` (the demo's seed, which has no server loop to queue them on)."""
    planned, already = await record(scope, on)
    # Interest has no bearing on which steps were taken: outside the run's lock, so the
    # tenant's next run or batch does not wait for it (71 of 121 s at 1 M invoices).
    async with write_transaction():
        await accrue_interest(scope, on)
    delivery = await deliver(scope, channels, on)
    if letters_now:
        await deliver_letters(scope, on)
    else:
        await _queue_letters(scope, on)
    return RunResult(
        run_date=on,
        recorded=len(planned.contacts),
        skipped=len(planned.steps) - len(planned.contacts),
        escalated=len(planned.escalations),
        fees=sum(s.fee for s in planned.steps),
        already_run=already,
        delivery=delivery,
    )


async def _queue_letters(scope: TenantScope, on: date) -> None:
    """Start the letters job when a letter is waiting. Rendering a PDF costs ≈ 7–10 ms of
    CPU, so a day's letters are minutes of work that must not hold up the run (nor its HTTP
    answer). With the queue down the letters wait, recorded, for the next run's job."""
    from backend import jobs, queue
    from backend.settings import get_settings

    waiting = (
        await scope.select(DunningStep, DunningStep.id)
        .where(_claimable(datetime.now(UTC), ("letter",)))
        .first()
    )
    if waiting is None:
        return
    try:
        queue.enqueue(get_settings(), jobs.render_letters, str(scope.tenant_id), on.isoformat())
    except queue.QueueUnavailable:
        log.warning("letters wait for the next run: the job queue is down", run_date=str(on))


def _backoff(attempts: int) -> timedelta:
    return min(MAX_BACKOFF, timedelta(seconds=BACKOFF_SECONDS * 2 ** max(0, attempts - 1)))


def _claimable(now: datetime, only: Sequence[str]) -> Any:
    """Steps of `only`'s channels due for an attempt at `now`, or whose claim has lapsed."""
    due = DunningStep.next_attempt_at.is_null() | (DunningStep.next_attempt_at <= now)
    return DunningStep.channel.is_in(list(only)) & (
        (DunningStep.status.is_in(["pending", "retrying"]) & due)
        | ((DunningStep.status == "sending") & (DunningStep.next_attempt_at <= now))
    )


async def deliver(
    scope: TenantScope,
    channels: dict[str, Channel],
    on: date,
    *,
    only: Sequence[str] = ELECTRONIC,
    batch: int = DELIVERY_BATCH,
) -> dict[str, int]:
    """Send every recorded contact of `only`'s channels that is due for an attempt; count
    the outcomes.

    Batch by batch: up to `batch` steps are claimed at once (`sending`, with a deadline) by
    one update that only one worker can win for each step, so two runs delivering at once
    never send the same step twice; a claim whose worker died opens again after
    `CLAIM_TIMEOUT`. What the batch's messages need is read in a few queries (the invoices
    with their debtors; the policy versions once per delivery), the messages go out with at
    most `SEND_CONCURRENCY` at a time, and the outcomes are recorded in one transaction.
    """
    started = datetime.now(UTC)  # steps set to retry during this delivery wait for a later one
    counts: dict[str, int] = defaultdict(int)
    context: _Context | None = None
    while True:
        claimed, lost = await _claim(scope, started, only, batch)
        if lost:
            counts["taken_by_another_run"] += lost
        if not claimed:
            if lost:
                continue  # another worker won these: look for the next ones
            break
        if context is None:
            context = await _context(scope)
        outcomes = await _attempt_all(scope, claimed, channels, context, on)
        for outcome, n in (await _settle_many(scope, outcomes)).items():
            counts[outcome] += n
    return dict(counts)


async def deliver_letters(scope: TenantScope, on: date) -> dict[str, int]:
    """Render and store every letter due for an attempt (the letters job, not the run).

    One letter is claimed at a time: rendering (≈ 7–10 ms of CPU each) dwarfs the claim, and
    a worker killed mid-job leaves at most one letter waiting for its claim to lapse.
    """
    return await deliver(scope, {}, on, only=("letter",), batch=1)


async def _claim(
    scope: TenantScope, started: datetime, only: Sequence[str], limit: int
) -> tuple[list[dict[str, Any]], int]:
    """Claim up to `limit` due steps; returns the claimed rows (as they were before the
    claim: `attempts` not yet counted) and how many another worker won first."""
    claimable = _claimable(started, only)
    candidates = [
        r["id"]
        for r in await scope.select(DunningStep, DunningStep.id).where(claimable).limit(limit)
    ]
    if not candidates:
        return [], 0
    async with write_transaction():
        # The condition is checked again under each row's lock: a step another worker
        # claimed meanwhile is no longer claimable and is left out.
        claimed = (
            await scope.update(
                DunningStep,
                {
                    DunningStep.status: "sending",
                    DunningStep.attempts: DunningStep.attempts + 1,
                    DunningStep.next_attempt_at: datetime.now(UTC) + CLAIM_TIMEOUT,
                },
            )
            .where(DunningStep.id.is_in(candidates) & claimable)
            .returning(*STEP_READ)
        )
    rows = [{**row, "attempts": row["attempts"] - 1} for row in claimed]
    return rows, len(candidates) - len(rows)


@dataclass
class _Context:
    creditor: Creditor
    payment: PaymentInstructions | None
    dispute: DisputeContact
    language: str
    rates: ReferenceRates
    overrides: dict[str, str]  # the tenant's own templates
    # (policy id, version) -> its policy, read once per delivery
    policies: dict[tuple[str, int], Policy | None] = field(default_factory=dict)


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


_MESSAGE_COLUMNS = (
    Invoice.id,
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


async def _invoices(scope: TenantScope, steps: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The invoices (with their debtors) of a batch of steps, by invoice id, in one query."""
    ids = list({str(s["invoice"]) for s in steps})
    rows = await scope.select(Invoice, *_MESSAGE_COLUMNS).where(Invoice.id.is_in(ids))
    return {str(r["id"]): r for r in rows}


async def _policies(scope: TenantScope, steps: list[dict[str, Any]], context: _Context) -> None:
    """Read the policy versions of a batch's steps that this delivery has not read yet."""
    for step in steps:
        key = (str(step["policy"]), int(step["version"]))
        if key not in context.policies:
            context.policies[key] = await _version_policy(scope, UUID(key[0]), key[1])


async def message_for(
    scope: TenantScope, step: dict[str, Any], context: _Context, on: date
) -> Message | str:
    """The message of one recorded step, or why none can be made (a permanent failure)."""
    invoices = await _invoices(scope, [step])
    await _policies(scope, [step], context)
    return _message(step, invoices[str(step["invoice"])], context, on)


def _message(
    step: dict[str, Any], invoice: dict[str, Any], context: _Context, on: date
) -> Message | str:
    """The message of a recorded step from its invoice row, or why none can be made."""
    if context.payment is None:
        return "the tenant's profile has no bankgiro or IBAN to pay to"
    policy = context.policies.get((str(step["policy"]), int(step["version"])))
    terms = InterestTerms.of(policy) if policy else InterestTerms()
    due_date = _day(invoice["due_date"])
    outstanding = max(0, invoice["amount"] - invoice["paid_amount"])
    sent_on = on
    accrued = late_interest(outstanding, due_date, max(sent_on, due_date), terms, context.rates)
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
            issue_date=_day(invoice["issue_date"]),
            due_date=due_date,
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
                from_date=due_date,
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
    return policies.parse(found["policy"], stored=True)


@dataclass(frozen=True)
class _Outcome:
    step: dict[str, Any]  # as claimed, `attempts` before this attempt
    result: SendResult
    letter: bytes | None = None  # the PDF of a letter made by this attempt


async def _attempt_all(
    scope: TenantScope,
    steps: list[dict[str, Any]],
    channels: dict[str, Channel],
    context: _Context,
    on: date,
) -> list[_Outcome]:
    """One attempt for each claimed step: letters rendered, email and SMS sent with at most
    `SEND_CONCURRENCY` under way at once."""
    invoices = await _invoices(scope, steps)
    await _policies(scope, steps, context)
    gate = asyncio.Semaphore(SEND_CONCURRENCY)

    async def attempt(step: dict[str, Any]) -> _Outcome:
        invoice = invoices.get(str(step["invoice"]))
        message = (
            _message(step, invoice, context, on) if invoice else "the invoice no longer exists"
        )
        if isinstance(message, str):
            return _Outcome(step, permanent(step["channel"], message))
        if step["channel"] == "letter":
            try:
                pdf = render_letter(message, overrides=context.overrides)
            except Exception as exc:
                return _Outcome(step, permanent("letter", f"not renderable: {exc}"))
            return _Outcome(step, SendResult(status="sent", channel="letter"), pdf)
        channel = channels.get(step["channel"])
        if channel is None:
            return _Outcome(
                step,
                SendResult(
                    status="retryable", channel=step["channel"], reason="channel not configured"
                ),
            )
        async with gate:
            try:
                result = await channel.send(
                    message, overrides=context.overrides, reference=str(step["id"])
                )
            except Exception as exc:  # a channel's own bug must not strand the whole batch
                result = SendResult(
                    status="retryable", channel=step["channel"], reason=f"channel failed: {exc}"
                )
        return _Outcome(step, result)

    return list(await asyncio.gather(*(attempt(step) for step in steps)))


async def _settle(scope: TenantScope, step: dict[str, Any], result: SendResult) -> str:
    """Record one attempt's outcome (`step["attempts"]` as before the attempt)."""
    counts = await _settle_many(scope, [_Outcome(step, result)])
    return next(iter(counts))


async def _settle_many(scope: TenantScope, outcomes: list[_Outcome]) -> dict[str, int]:
    """Record a batch of attempts in one transaction: sent, retrying with backoff, or failed
    for good (it does not count as sent and its fee is given back); letters stored."""
    now = datetime.now(UTC)
    sent: list[tuple[Any, ...]] = []
    retrying: list[tuple[Any, ...]] = []
    failed: list[_Outcome] = []
    letters: list[tuple[Any, ...]] = []
    happened: list[tuple[EventKind, UUID | str | None, dict[str, Any]]] = []
    counts: dict[str, int] = defaultdict(int)
    for outcome in outcomes:
        step, result = outcome.step, outcome.result
        attempts = step["attempts"] + 1
        if result.sent:
            sent.append(("sent", now, result.provider_id, None, step["id"]))
            counts["sent"] += 1
            if outcome.letter is not None:
                letter_id = uuid4()
                letters.append(
                    (letter_id, scope.tenant_id, step["invoice"], step["id"], outcome.letter, now)
                )
                happened.append(
                    (
                        "letter_created",
                        step["invoice"],
                        {**_event_base(step), "letter_id": str(letter_id)},
                    )
                )
        elif result.status == "retryable" and attempts < MAX_ATTEMPTS:
            reason = (result.reason or "")[:500]
            retrying.append(("retrying", now + _backoff(attempts), reason, step["id"]))
            counts["retrying"] += 1
        else:
            failed.append(outcome)
            counts["failed"] += 1
    async with write_transaction():
        await scope.upsert(Letter, LETTER_COLUMNS, letters, ("id",), ())
        await scope.update_many(
            DunningStep, "id", ("status", "sent_at", "provider_id", "last_error"), sent
        )
        await scope.update_many(
            DunningStep, "id", ("status", "next_attempt_at", "last_error"), retrying
        )
        await scope.update_many(
            DunningStep,
            "id",
            ("status", "last_error"),
            [("failed", (o.result.reason or "")[:500], o.step["id"]) for o in failed],
        )
        for outcome in failed:
            step, reason = outcome.step, outcome.result.reason or ""
            if step["fee"]:  # a contact that never went out charges nothing
                await scope.update(
                    Invoice, {Invoice.fees_charged: Invoice.fees_charged - step["fee"]}
                ).where(Invoice.id == step["invoice"])
            await scope.audit(
                "dunning.failed",
                "invoice",
                step["invoice"],
                step=str(step["id"]),
                reason=reason[:200],
            )
            happened.append(
                (
                    "contact_failed",
                    step["invoice"],
                    {**_event_base(step), "reason": reason[:200], "fee_returned": step["fee"]},
                )
            )
        await events.record_many(scope, happened)
    return dict(counts)


def _event_base(step: dict[str, Any]) -> dict[str, Any]:
    return {"step_id": str(step["id"]), "action": step["action"], "channel": step["channel"]}


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
