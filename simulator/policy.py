"""Credit policies (formats §2): parsing, validation against the rules, segment matching.

One module for the simulator and the service alike. `parse_policies` accepts one policy or
`{"policies": [...]}` and either returns them all or raises `PolicyError` listing every
violation with its path (`policies[1].steps[2].fee`), so a client fixes a policy in one go.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulator.rules import SWEDEN, Rules

ACTIONS = ("reminder", "collection_notice")
CHANNELS = ("email", "sms", "letter", "phone")
DEBTOR_TYPES = ("b2b", "b2c")
INTEREST_MODES = ("statutory", "contract", "none")
# A name is shown in lists and letters and stored as text: one line, nothing unprintable
# (PostgreSQL text cannot even hold NUL).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# A step more than this many days from the due date is almost certainly a typo.
DAY_RANGE = (-90, 730)
# A policy's steps and a set's policies at most: real ones hold a handful, and a document of
# thousands would only cost every forecast and every dunning run its time.
MAX_STEPS = 50
MAX_POLICIES = 50


class PolicyError(ValueError):
    """Every violation of a policy document, each as (path, message)."""

    def __init__(self, violations: list[tuple[str, str]]) -> None:
        self.violations = violations
        super().__init__("; ".join(f"{path}: {message}" for path, message in violations))


@dataclass(frozen=True)
class Segment:
    debtor_type: str | None = None
    min_amount: int = 0
    max_amount: int | None = None

    def takes(self, debtor_type: str, amount: int) -> bool:
        """Whether one invoice falls in this segment (`mask` for arrays of them)."""
        if self.debtor_type not in (None, debtor_type) or amount < self.min_amount:
            return False
        return self.max_amount is None or amount <= self.max_amount

    def mask(self, debtor_type: np.ndarray, amount: np.ndarray) -> np.ndarray:
        """Which invoices (arrays of 'b2b'/'b2c' and minor-unit amounts) this segment takes."""
        selected = amount >= self.min_amount
        if self.max_amount is not None:
            selected &= amount <= self.max_amount
        if self.debtor_type is not None:
            selected &= debtor_type == self.debtor_type
        return selected


@dataclass(frozen=True)
class Step:
    day: int
    action: str
    channel: str
    fee: int = 0
    deadline_days: int | None = None


@dataclass(frozen=True)
class Policy:
    name: str
    segment: Segment = field(default_factory=Segment)
    steps: tuple[Step, ...] = ()
    escalate_after_days: int | None = None
    interest_mode: str = "statutory"
    interest_annual_rate_bp: int | None = None
    compensation: bool = False  # B2B late-payment compensation instead of fees
    plans_allowed: bool = False
    plan_max_installments: int = 0
    plan_min_amount: int = 0
    plan_setup_fee: int = 0


def assign(policies: list[Policy], debtor_type: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """Index of the first policy whose segment matches each invoice; -1 where none does."""
    chosen = np.full(len(amount), -1, dtype=np.int64)
    for index, policy in enumerate(policies):
        free = chosen < 0
        chosen[free & policy.segment.mask(debtor_type, amount)] = index
    return chosen


def parse_policies(document: Any, rules: Rules = SWEDEN, bounded: bool = True) -> list[Policy]:
    """A policy document (one policy or {"policies": [...]}) as policies, or PolicyError.

    `bounded`: hold it to MAX_POLICIES and MAX_STEPS, as for a document being written now.
    A document stored before those bounds existed is read with `bounded=False`: a live
    policy that was valid when it went live must go on being carried out."""
    violations: list[tuple[str, str]] = []
    if isinstance(document, dict) and "policies" in document:
        items = document["policies"]
        if not isinstance(items, list) or not items:
            raise PolicyError([("policies", "must be a non-empty list of policies")])
        if bounded and len(items) > MAX_POLICIES:
            raise PolicyError([("policies", f"at most {MAX_POLICIES} policies in a set")])
        extra = set(document) - {"policies"}
        violations += [(name, "unknown field") for name in sorted(extra)]
        paths = [f"policies[{i}]" for i in range(len(items))]
    else:
        items, paths = [document], [""]
    policies = []
    for item, path in zip(items, paths, strict=True):
        policy, found = _parse_one(item, path, rules, bounded)
        violations += found
        if policy is not None:
            policies.append(policy)
    if violations:
        raise PolicyError(violations)
    return policies


def _at(path: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{path}[{name}]"
    return f"{path}.{name}" if path else name


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Reader:
    """Reads fields off a JSON object, collecting a violation for each bad one."""

    def __init__(self, obj: dict[str, Any], path: str, known: set[str]) -> None:
        self.obj, self.path = obj, path
        self.violations = [(_at(path, k), "unknown field") for k in obj if k not in known]

    def bad(self, name: str, message: str) -> None:
        self.violations.append((_at(self.path, name), message))

    def integer(
        self,
        name: str,
        default: Any,
        low: int | None = None,
        high: int | None = None,
        required: bool = False,
    ) -> Any:
        if name not in self.obj or (self.obj[name] is None and not required):
            if required:
                self.bad(name, "required")
            return default
        value = self.obj[name]
        if not _int(value):
            self.bad(name, "must be an integer")
            return default
        if low is not None and value < low:
            self.bad(name, f"must be at least {low}")
        if high is not None and value > high:
            self.bad(name, f"must be at most {high}")
        return value

    def choice(
        self, name: str, options: tuple[str, ...], default: Any, required: bool = False
    ) -> Any:
        if name not in self.obj or self.obj[name] is None:
            if required:
                self.bad(name, f"required: one of {', '.join(options)}")
            return default
        value = self.obj[name]
        if value not in options:
            self.bad(name, f"must be one of {', '.join(options)}")
            return default
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.obj.get(name, default)
        if not isinstance(value, bool):
            self.bad(name, "must be true or false")
            return default
        return value


def _parse_one(
    item: Any, path: str, rules: Rules, bounded: bool = True
) -> tuple[Policy | None, list[tuple[str, str]]]:
    if not isinstance(item, dict):
        return None, [(path or "$", "a policy must be a JSON object")]
    known = {
        "name",
        "segment",
        "steps",
        "escalate_after_days",
        "interest",
        "payment_plans",
        "compensation",
    }
    r = _Reader(item, path, known)
    name = item.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        r.bad("name", "required: a name of 1 to 200 characters")
    elif _CONTROL.search(name):
        r.bad("name", "one line without control characters")
    segment = _segment(item.get("segment", {}), _at(path, "segment"), r)
    steps = _steps(item.get("steps"), _at(path, "steps"), r, rules, bounded)
    escalate = r.integer("escalate_after_days", None, low=0, high=DAY_RANGE[1])
    compensation = r.boolean("compensation", False)
    interest_mode, rate = _interest(
        item.get("interest", {"mode": "statutory"}), _at(path, "interest"), r
    )
    plans = _plans(item.get("payment_plans"), _at(path, "payment_plans"), r, rules)

    # Rules that tie fields together.
    if compensation:
        if segment.debtor_type != "b2b":
            r.bad(
                "compensation",
                "late-payment compensation is for B2B only: set segment.debtor_type to b2b",
            )
        for i, step in enumerate(steps):
            if step.fee:
                r.violations.append(
                    (
                        _at(_at(_at(path, "steps"), i), "fee"),
                        "no reminder or collection fee on top of B2B compensation",
                    )
                )
    notices = [(i, s) for i, s in enumerate(steps) if s.action == "collection_notice"]
    if escalate is not None:
        for i, step in notices:
            if step.deadline_days is not None and escalate < step.day + step.deadline_days:
                r.bad(
                    "escalate_after_days",
                    f"escalation on day {escalate} comes before the deadline of steps[{i}] "
                    f"(day {step.day} + {step.deadline_days})",
                )
    policy = Policy(
        name=name if isinstance(name, str) else "",
        segment=segment,
        steps=tuple(steps),
        escalate_after_days=escalate,
        interest_mode=interest_mode,
        interest_annual_rate_bp=rate,
        compensation=compensation,
        **plans,
    )
    return policy, r.violations


def _segment(raw: Any, path: str, parent: _Reader) -> Segment:
    if raw is None:
        return Segment()
    if not isinstance(raw, dict):
        parent.violations.append((path, "must be an object"))
        return Segment()
    r = _Reader(raw, path, {"debtor_type", "min_amount", "max_amount"})
    debtor_type = r.choice("debtor_type", DEBTOR_TYPES, None)
    low = r.integer("min_amount", 0, low=0)
    high = r.integer("max_amount", None, low=0)
    if high is not None and _int(low) and high < low:
        r.bad("max_amount", "must not be below min_amount")
    parent.violations += r.violations
    return Segment(debtor_type, low, high)


def _steps(raw: Any, path: str, parent: _Reader, rules: Rules, bounded: bool = True) -> list[Step]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        parent.violations.append((path, "must be a list of steps"))
        return []
    if bounded and len(raw) > MAX_STEPS:
        parent.violations.append((path, f"at most {MAX_STEPS} steps"))
        return []
    steps: list[Step] = []
    reminder_fees: list[int] = []
    notice_fees: list[int] = []
    for i, item in enumerate(raw):
        at = _at(path, i)
        if not isinstance(item, dict):
            parent.violations.append((at, "a step must be an object"))
            continue
        r = _Reader(item, at, {"day", "action", "channel", "fee", "deadline_days"})
        day = r.integer("day", 0, low=DAY_RANGE[0], high=DAY_RANGE[1], required=True)
        action = r.choice("action", ACTIONS, "reminder", required=True)
        channel = r.choice("channel", CHANNELS, "email", required=True)
        fee = r.integer("fee", 0, low=0)
        deadline = None
        if action == "collection_notice":
            deadline = r.integer(
                "deadline_days",
                None,
                low=rules.min_collection_deadline_days,
                high=90,
                required=True,
            )
            if fee > rules.collection_fee_cap:
                r.bad("fee", f"a collection fee is at most {rules.collection_fee_cap} (180 kr)")
            if fee:
                notice_fees.append(i)
        else:
            if "deadline_days" in item:
                r.bad("deadline_days", "only a collection_notice has a deadline")
            if fee > rules.reminder_fee_cap:
                r.bad("fee", f"a reminder fee is at most {rules.reminder_fee_cap} (60 kr)")
            if fee and _int(day) and day <= 0:
                r.bad("fee", "a reminder fee may only be charged after the due date")
            if fee:
                reminder_fees.append(i)
        if steps and _int(day) and day < steps[-1].day:
            r.bad("day", f"steps must be in day order (day {day} after day {steps[-1].day})")
        parent.violations += r.violations
        steps.append(Step(day, action, channel, fee, deadline))
    for i in reminder_fees[1:]:
        parent.violations.append(
            (_at(_at(path, i), "fee"), "a reminder fee is charged at most once per invoice")
        )
    for i in notice_fees[1:]:
        parent.violations.append(
            (_at(_at(path, i), "fee"), "a collection fee is charged at most once per debt")
        )
    return steps


def _interest(raw: Any, path: str, parent: _Reader) -> tuple[str, int | None]:
    if not isinstance(raw, dict):
        parent.violations.append((path, "must be an object with a mode"))
        return "statutory", None
    r = _Reader(raw, path, {"mode", "annual_rate_bp"})
    mode = r.choice("mode", INTEREST_MODES, "statutory", required=True)
    rate = None
    if mode == "contract":
        rate = r.integer("annual_rate_bp", None, low=0, high=10_000, required=True)
    elif "annual_rate_bp" in raw:
        r.bad("annual_rate_bp", "only a contract rate has annual_rate_bp")
    parent.violations += r.violations
    return mode, rate


def _plans(raw: Any, path: str, parent: _Reader, rules: Rules) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        parent.violations.append((path, "must be an object"))
        return {}
    r = _Reader(raw, path, {"allowed", "max_installments", "min_amount", "setup_fee"})
    plans = {
        "plans_allowed": r.boolean("allowed", False),
        "plan_max_installments": r.integer("max_installments", 0, low=1, high=36),
        "plan_min_amount": r.integer("min_amount", 0, low=0),
        "plan_setup_fee": r.integer("setup_fee", 0, low=0, high=rules.plan_setup_fee_cap),
    }
    parent.violations += r.violations
    return plans
