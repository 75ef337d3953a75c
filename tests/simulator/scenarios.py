"""The policy changes the simulator is held to (issue 3): a baseline and six variations."""

from __future__ import annotations

from simulator.policy import Policy, parse_policies

PRE_DUE = {"day": -3, "action": "reminder", "channel": "email"}
FIRST = {"day": 10, "action": "reminder", "channel": "letter", "fee": 6000}
SECOND = {"day": 24, "action": "reminder", "channel": "sms"}
THIRD = {"day": 38, "action": "reminder", "channel": "email"}
NOTICE = {
    "day": 45,
    "action": "collection_notice",
    "channel": "letter",
    "fee": 18000,
    "deadline_days": 10,
}


def _policy(name: str, steps: list[dict]) -> list[Policy]:
    return parse_policies({"name": name, "steps": steps, "escalate_after_days": 90})


BASELINE = _policy("baseline", [PRE_DUE, FIRST, SECOND, THIRD])
CHANGES: dict[str, list[Policy]] = {
    "first reminder earlier": _policy("earlier", [PRE_DUE, {**FIRST, "day": 5}, SECOND, THIRD]),
    "first reminder later": _policy("later", [PRE_DUE, {**FIRST, "day": 15}, SECOND, THIRD]),
    "letter to sms": _policy("sms", [PRE_DUE, {**FIRST, "channel": "sms"}, SECOND, THIRD]),
    "one reminder instead of three": _policy("one", [PRE_DUE, FIRST]),
    "add a collection notice": _policy("notice", [PRE_DUE, FIRST, SECOND, THIRD, NOTICE]),
    "no pre-due reminder": _policy("no-pre-due", [FIRST, SECOND, THIRD]),
}
