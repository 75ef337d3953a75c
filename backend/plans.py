"""Payment plans (avbetalningsplan): an unpaid invoice split into instalments, within its
live policy's limits (plans allowed, most instalments, least amount, the set-up fee capped
by the law), while the automated flow holds (status `planned`).

Payments allocate to instalments in due order: the plan is kept while what was paid since it
was made covers every instalment whose day has passed. The daily run checks each plan: a
missed instalment breaks it and the flow resumes from where it stood; an invoice paid in full
completes it. The set-up fee is charged once, with the plan.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from litestar.exceptions import ClientException, NotFoundException

from backend import events, policies
from backend.tables import Instalment, Invoice, PaymentPlan
from backend.validation import FieldError, InvalidInput
from simulator.policy import Policy
from tenants.scope import TenantScope
from tenants.transactions import write_transaction

# Instalments fall due this many days apart unless the request says otherwise.
DEFAULT_INTERVAL_DAYS = 30
MAX_FIRST_DUE_DAYS = 90  # the first instalment is due within this many days


class PlanConflict(ClientException):
    status_code = 409


def split(total: int, count: int) -> list[int]:
    """`total` in `count` instalments of whole minor units; the first ones take the remainder."""
    base, extra = divmod(total, count)
    return [base + (1 if i < extra else 0) for i in range(count)]


async def create(
    scope: TenantScope,
    invoice_id: UUID,
    installments: int,
    first_due: date,
    interval_days: int = DEFAULT_INTERVAL_DAYS,
    today: date | None = None,
) -> dict[str, Any]:
    today = today or datetime.now(UTC).date()
    async with write_transaction():
        await scope.lock("dunning")  # the run must not take a step while the plan is made
        invoice = await scope.get(
            Invoice,
            invoice_id,
            Invoice.amount,
            Invoice.paid_amount,
            Invoice.fees_charged,
            Invoice.state,
            Invoice.settled_date,
            Invoice.debtor.type.as_alias("debtor_type"),
        )
        if invoice["settled_date"] is not None:
            raise PlanConflict("the invoice is paid")
        if invoice["state"] in ("planned", "disputed", "written_off"):
            raise PlanConflict(f"the invoice is {invoice['state']}: no plan")
        if await scope.count(PaymentPlan).where(
            (PaymentPlan.invoice == invoice_id) & (PaymentPlan.status == "active")
        ):
            raise PlanConflict("the invoice has an active plan")
        outstanding = max(0, invoice["amount"] - invoice["paid_amount"])
        governing = policies.governing(
            await policies.live_set(scope), invoice["debtor_type"], invoice["amount"]
        )
        policy = governing[2] if governing else None
        errors = _check(policy, outstanding, installments, first_due, today)
        if errors:
            raise InvalidInput(errors)
        assert policy is not None
        fee = policy.plan_setup_fee
        amounts = split(outstanding + fee, installments)
        plan_id = uuid4()
        await scope.insert(
            PaymentPlan,
            {
                "id": plan_id,
                "invoice": invoice_id,
                "status": "active",
                "setup_fee": fee,
                "paid_before": invoice["paid_amount"],
                "created_at": datetime.now(UTC),
                "created_by": scope.principal.actor,
            },
        )
        await scope.insert(
            Instalment,
            *(
                {
                    "id": uuid4(),
                    "plan": plan_id,
                    "number": i + 1,
                    "due_date": first_due + timedelta(days=interval_days * i),
                    "amount": amount,
                }
                for i, amount in enumerate(amounts)
            ),
        )
        await scope.update(
            Invoice,
            {Invoice.state: "planned", Invoice.fees_charged: invoice["fees_charged"] + fee},
        ).where(Invoice.id == invoice_id)
        await scope.audit(
            "plan.created", "invoice", invoice_id, instalments=installments, setup_fee=fee
        )
        await events.record(scope, "plan_created", invoice_id, instalments=amounts, setup_fee=fee)
    return await get(scope, invoice_id)


def _check(
    policy: Policy | None, outstanding: int, count: int, first_due: date, today: date
) -> list[FieldError]:
    if policy is None or not policy.plans_allowed:
        return [FieldError("$", "the invoice's live policy allows no payment plans")]
    errors = []
    if count > policy.plan_max_installments:
        errors.append(
            FieldError("installments", f"at most {policy.plan_max_installments} by the policy")
        )
    if outstanding < policy.plan_min_amount:
        errors.append(
            FieldError("$", f"the policy plans only debts of at least {policy.plan_min_amount}")
        )
    if outstanding == 0:
        errors.append(FieldError("$", "nothing is outstanding"))
    if not today <= first_due <= today + timedelta(days=MAX_FIRST_DUE_DAYS):
        errors.append(
            FieldError("first_due", f"from today to {MAX_FIRST_DUE_DAYS} days from today")
        )
    return errors


async def get(scope: TenantScope, invoice_id: UUID) -> dict[str, Any]:
    plan = (
        await scope.select(PaymentPlan)
        .where(PaymentPlan.invoice == invoice_id)
        .order_by(PaymentPlan.created_at, ascending=False)
        .first()
    )
    if plan is None:
        raise NotFoundException("no payment plan")
    invoice = await scope.get(Invoice, invoice_id, Invoice.paid_amount)
    paid = invoice["paid_amount"] - plan["paid_before"]
    instalments = []
    for row in (
        await scope.select(Instalment)
        .where(Instalment.plan == plan["id"])
        .order_by(Instalment.number)
    ):
        covered = min(row["amount"], max(0, paid))
        paid -= row["amount"]
        instalments.append(
            {
                "number": row["number"],
                "due_date": row["due_date"],
                "amount": row["amount"],
                "paid": covered,
            }
        )
    return {
        "id": plan["id"],
        "invoice_id": invoice_id,
        "status": plan["status"],
        "setup_fee": plan["setup_fee"],
        "created_at": plan["created_at"],
        "ended_on": plan["ended_on"],
        "instalments": instalments,
    }


async def check(scope: TenantScope, on: date) -> tuple[int, int]:
    """End the plans whose invoice is paid (completed) or whose instalment came due unpaid
    (broken: the flow resumes). Inside the run's transaction; returns (completed, broken)."""
    plans = await scope.select(
        PaymentPlan,
        PaymentPlan.id,
        PaymentPlan.invoice,
        PaymentPlan.paid_before,
        PaymentPlan.invoice.paid_amount.as_alias("paid_amount"),
        PaymentPlan.invoice.settled_date.as_alias("settled_date"),
    ).where(PaymentPlan.status == "active")
    completed = broken = 0
    for plan in plans:
        if plan["settled_date"] is not None:
            status, state = "completed", None
        else:
            due = await scope.select(Instalment, Instalment.amount).where(
                (Instalment.plan == plan["id"]) & (Instalment.due_date < on)
            )
            if plan["paid_amount"] - plan["paid_before"] >= sum(i["amount"] for i in due):
                continue
            status, state = "broken", "active"
        await scope.update(
            PaymentPlan, {PaymentPlan.status: status, PaymentPlan.ended_on: on}
        ).where(PaymentPlan.id == plan["id"])
        if state:
            await scope.update(Invoice, {Invoice.state: state}).where(Invoice.id == plan["invoice"])
        await scope.audit(f"plan.{status}", "invoice", plan["invoice"], on=on.isoformat())
        if status == "broken":
            await events.record(scope, "instalment_missed", plan["invoice"], on=on.isoformat())
        if status == "completed":
            completed += 1
        else:
            broken += 1
    return completed, broken
