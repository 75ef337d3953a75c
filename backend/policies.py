"""A tenant's credit policies: versions that go draft → live → retired, never edited in place.

`simulator.policy` stays the one definition of a policy (formats §2) and of its rules: a
document is stored only once `parse_policies` accepts it, and every violation is answered
with its path (`policy.steps[1].fee`) so a client fixes the policy in one go.

The live versions of a tenant are its policy set. Each open invoice follows the live version
whose segment (debtor type, amount range) takes it. Live segments never overlap: activating
a version retires the previous live version of the same policy, and of any other policy with
exactly the same segment (API.md: "the previous live version of that segment retires"); a
version whose segment merely overlaps another live segment is refused with 409 naming it, so
no invoice is ever claimed by two policies and no order among them is needed.

Going live passes through `ACTIVATION_GATES`, the one seam where the simulation service
refuses a version that was never simulated (issue 8). A gate raises `GateRefused` with its
reason; an agency_admin's `override_reason` lets the version through, kept in the audit log.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from litestar.exceptions import ClientException, NotFoundException

from backend import events
from backend.tables import Policy as PolicyRow
from backend.tables import PolicyVersion
from backend.validation import FieldError, InvalidInput
from simulator.policy import Policy, PolicyError, Segment, parse_policies
from tenants import clock
from tenants.pagination import decode_cursor_as, keyset_page
from tenants.scope import TenantScope
from tenants.transactions import write_transaction

STATUSES = ("draft", "live", "retired")


class PolicyConflict(ClientException):
    status_code = 409


class GateRefused(PolicyConflict):
    """A gate's reason a version may not go live (without an agency_admin's override)."""


@dataclass(frozen=True)
class Activation:
    """What a gate is asked about: this version of this tenant, by this caller."""

    scope: TenantScope
    policy_id: UUID
    number: int
    policy: Policy


# A gate refuses with GateRefused, or lets the version through with what it found (the
# simulation service answers the simulated effect), shown with the activated version.
ActivationGate = Callable[[Activation], Awaitable[dict[str, Any] | None]]
# The simulation service appends its gate here (issue 8). Empty: nothing but the rules and
# the segments' overlap stands between a valid draft and going live.
ACTIVATION_GATES: list[ActivationGate] = []


def parse(document: Any, path: str = "policy", stored: bool = False) -> Policy:
    """One policy document (formats §2), or InvalidInput naming every violation's path.

    `stored`: a version read back from the database, held to the rules but not to the size
    bounds set after it may have been written (`simulator.policy.MAX_STEPS`)."""
    if isinstance(document, dict) and "policies" in document:
        raise InvalidInput([FieldError(f"{path}.policies", "one policy per version, not a set")])
    try:
        (policy,) = parse_policies(document, bounded=not stored)
    except PolicyError as exc:
        raise InvalidInput(
            [FieldError(f"{path}.{where}" if where else path, why) for where, why in exc.violations]
        ) from exc
    return policy


def _segment_columns(policy: Policy) -> dict[str, Any]:
    segment = policy.segment
    return {
        "debtor_type": segment.debtor_type,
        "min_amount": segment.min_amount,
        "max_amount": segment.max_amount,
    }


def _segment(row: dict[str, Any]) -> Segment:
    return Segment(row["debtor_type"], row["min_amount"], row["max_amount"])


def overlaps(a: Segment, b: Segment) -> bool:
    """Whether some invoice falls in both segments."""
    if a.debtor_type and b.debtor_type and a.debtor_type != b.debtor_type:
        return False
    a_high = a.max_amount if a.max_amount is not None else float("inf")
    b_high = b.max_amount if b.max_amount is not None else float("inf")
    return max(a.min_amount, b.min_amount) <= min(a_high, b_high)


def _version_out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "number": row["number"],
        "status": row["status"],
        "policy": json.loads(row["document"]),
        "created_at": row["created_at"],
        "created_by": row["created_by"],
        "activated_at": row["activated_at"],
        "activated_by": row["activated_by"],
        "retired_at": row["retired_at"],
    }


async def create(scope: TenantScope, document: Any) -> dict[str, Any]:
    """A new policy whose version 1 is a draft of `document`."""
    policy = parse(document)
    policy_id = uuid4()
    async with write_transaction():
        await scope.insert(
            PolicyRow, {"id": policy_id, "name": policy.name, "created_at": clock.now()}
        )
        await _insert_version(scope, policy_id, 1, policy, document)
        await scope.audit("policy.created", "policy", policy_id, name=policy.name)
    return await get(scope, policy_id)


async def add_version(scope: TenantScope, policy_id: UUID, document: Any) -> dict[str, Any]:
    """The next version of a policy, as a draft; the live one is not touched."""
    policy = parse(document)
    async with write_transaction():
        await scope.lock("policies")
        await scope.get(PolicyRow, policy_id, PolicyRow.id)
        versions = await scope.select(PolicyVersion, PolicyVersion.number).where(
            PolicyVersion.policy == policy_id
        )
        number = max((v["number"] for v in versions), default=0) + 1
        await _insert_version(scope, policy_id, number, policy, document)
        await scope.update(PolicyRow, {PolicyRow.name: policy.name}).where(
            PolicyRow.id == policy_id
        )
        await scope.audit("policy.version_created", "policy", policy_id, number=number)
    return await version(scope, policy_id, number)


async def _insert_version(
    scope: TenantScope, policy_id: UUID, number: int, policy: Policy, document: Any
) -> None:
    await scope.insert(
        PolicyVersion,
        {
            "id": uuid4(),
            "policy": policy_id,
            "number": number,
            "status": "draft",
            "document": json.dumps(document, ensure_ascii=False, sort_keys=True),
            **_segment_columns(policy),
            "created_at": clock.now(),
            "created_by": scope.principal.actor,
        },
    )


async def get(scope: TenantScope, policy_id: UUID) -> dict[str, Any]:
    row = await scope.get(PolicyRow, policy_id)
    versions = (
        await scope.select(PolicyVersion)
        .where(PolicyVersion.policy == policy_id)
        .order_by(PolicyVersion.number)
    )
    return {
        "id": row["id"],
        "name": row["name"],
        "created_at": row["created_at"],
        "live_version": next((v["number"] for v in versions if v["status"] == "live"), None),
        "versions": [_version_out(v) for v in versions],
    }


async def version(scope: TenantScope, policy_id: UUID, number: int) -> dict[str, Any]:
    row = await _version_row(scope, policy_id, number)
    return {"policy_id": policy_id, **_version_out(row)}


async def _version_row(scope: TenantScope, policy_id: UUID, number: int) -> dict[str, Any]:
    row = (
        await scope.select(PolicyVersion)
        .where((PolicyVersion.policy == policy_id) & (PolicyVersion.number == number))
        .first()
    )
    if row is None:
        raise NotFoundException("policy version not found")
    return row


async def activate(
    scope: TenantScope, policy_id: UUID, number: int, override_reason: str | None = None
) -> dict[str, Any]:
    """Make a draft live: the rules again, the gates, then the segments; all in one step."""
    if override_reason is not None and scope.principal.role != "agency_admin":
        raise InvalidInput([FieldError("override_reason", "only an agency_admin may override")])
    async with write_transaction():
        await scope.lock("policies")
        row = await _version_row(scope, policy_id, number)
        if row["status"] != "draft":
            raise PolicyConflict(f"version {number} is {row['status']}: only a draft goes live")
        # Stored documents were valid when stored; the rules may have changed since.
        policy = parse(json.loads(row["document"]), stored=True)
        overridden = None
        evidence: dict[str, Any] | None = None
        for gate in ACTIVATION_GATES:
            try:
                evidence = await gate(Activation(scope, policy_id, number, policy)) or evidence
            except GateRefused as refused:
                if override_reason is None:
                    raise
                overridden = refused.detail
        live = await scope.select(
            PolicyVersion,
            PolicyVersion.id,
            PolicyVersion.policy,
            PolicyVersion.number,
            PolicyVersion.debtor_type,
            PolicyVersion.min_amount,
            PolicyVersion.max_amount,
        ).where(PolicyVersion.status == "live")
        retiring = [v for v in live if v["policy"] == policy_id or _segment(v) == policy.segment]
        clashes = [v for v in live if v not in retiring and overlaps(_segment(v), policy.segment)]
        if clashes:
            other = clashes[0]
            raise PolicyConflict(
                f"the segment overlaps live version {other['number']} of policy "
                f"{other['policy']}: narrow one of them, or retire that one first"
            )
        now = clock.now()
        for old in retiring:
            await scope.update(
                PolicyVersion, {PolicyVersion.status: "retired", PolicyVersion.retired_at: now}
            ).where(PolicyVersion.id == old["id"])
            await scope.audit(
                "policy.retired", "policy", old["policy"], number=old["number"], by_version=number
            )
        await scope.update(
            PolicyVersion,
            {
                PolicyVersion.status: "live",
                PolicyVersion.activated_at: now,
                PolicyVersion.activated_by: scope.principal.actor,
            },
        ).where(PolicyVersion.id == row["id"])
        await scope.audit(
            "policy.activated",
            "policy",
            policy_id,
            number=number,
            override_reason=override_reason,
            overridden=overridden,
        )
        await events.record(scope, "policy_activated", None, policy_id=policy_id, number=number)
    return {**await version(scope, policy_id, number), "simulation": evidence}


async def retire(scope: TenantScope, policy_id: UUID, number: int) -> dict[str, Any]:
    """Stop a live version (its invoices then follow no policy) or withdraw a draft."""
    async with write_transaction():
        await scope.lock("policies")
        row = await _version_row(scope, policy_id, number)
        if row["status"] == "retired":
            raise PolicyConflict(f"version {number} is already retired")
        await scope.update(
            PolicyVersion,
            {PolicyVersion.status: "retired", PolicyVersion.retired_at: clock.now()},
        ).where(PolicyVersion.id == row["id"])
        await scope.audit("policy.retired", "policy", policy_id, number=number)
    return await version(scope, policy_id, number)


def governing(
    live: list[tuple[UUID, int, Policy]], debtor_type: str, amount: int
) -> tuple[UUID, int, Policy] | None:
    """The live version an invoice follows (live segments never overlap: at most one)."""
    return next((entry for entry in live if entry[2].segment.takes(debtor_type, amount)), None)


async def live_set(scope: TenantScope) -> list[tuple[UUID, int, Policy]]:
    """(policy id, version number, policy) of every live version: the tenant's policy set."""
    rows = (
        await scope.select(
            PolicyVersion, PolicyVersion.policy, PolicyVersion.number, PolicyVersion.document
        )
        .where(PolicyVersion.status == "live")
        .order_by(PolicyVersion.policy)
    )
    return [(r["policy"], r["number"], parse(json.loads(r["document"]), stored=True)) for r in rows]


async def page(
    scope: TenantScope, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Policies by name, with the number of their live version, keyset-paginated."""
    query = scope.select(PolicyRow).order_by(PolicyRow.name).order_by(PolicyRow.id)
    if cursor is not None:
        name, after = decode_cursor_as(cursor, str, UUID)
        query = query.where(
            (PolicyRow.name > name) | ((PolicyRow.name == name) & (PolicyRow.id > after))
        )
    rows, next_cursor = await keyset_page(query, limit, lambda r: (r["name"], r["id"]))
    live = {
        r["policy"]: r["number"]
        for r in await scope.select(
            PolicyVersion, PolicyVersion.policy, PolicyVersion.number
        ).where(PolicyVersion.status == "live")
    }
    items = [
        {
            "id": r["id"],
            "name": r["name"],
            "created_at": r["created_at"],
            "live_version": live.get(r["id"]),
        }
        for r in rows
    ]
    return items, next_cursor
