"""The policy model: the shared examples parse, every rule violation is named by its path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from simulator.policy import PolicyError, Segment, assign, parse_policies
from simulator.rules import Rules, reference_rate_bp

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "formats" / "examples"


def base(**changes):
    policy = {
        "name": "Standard B2C",
        "segment": {"debtor_type": "b2c", "min_amount": 0, "max_amount": None},
        "steps": [
            {"day": -3, "action": "reminder", "channel": "email"},
            {"day": 10, "action": "reminder", "channel": "letter", "fee": 6000},
            {
                "day": 38,
                "action": "collection_notice",
                "channel": "letter",
                "fee": 18000,
                "deadline_days": 10,
            },
        ],
        "escalate_after_days": 60,
        "interest": {"mode": "statutory"},
        "payment_plans": {
            "allowed": True,
            "max_installments": 3,
            "min_amount": 50000,
            "setup_fee": 17000,
        },
    }
    policy.update(changes)
    return policy


def violations(document, rules=None):
    with pytest.raises(PolicyError) as caught:
        parse_policies(document, **({"rules": rules} if rules else {}))
    return dict(caught.value.violations)


@pytest.mark.skipif(
    not EXAMPLES.exists(), reason="shared/formats/examples not beside the repository"
)
def test_the_shared_examples_parse():
    single = parse_policies(json.loads((EXAMPLES / "policy-b2c.json").read_text()))
    assert [p.name for p in single] == ["Standard B2C"]
    assert [s.fee for s in single[0].steps] == [6000, 0, 18000]
    several = parse_policies(json.loads((EXAMPLES / "policy-set.json").read_text()))
    assert [p.segment.debtor_type for p in several] == ["b2b", "b2b", "b2c"]
    assert several[0].segment.min_amount == 5_000_000


def test_a_valid_policy_round_trips_its_fields():
    (policy,) = parse_policies(base())
    assert (
        policy.escalate_after_days == 60 and policy.plans_allowed and policy.plan_setup_fee == 17000
    )
    first = policy.steps[0]
    assert (first.day, first.action, first.channel) == (-3, "reminder", "email")
    assert policy.steps[2].deadline_days == 10


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        (
            {"steps": [{"day": 10, "action": "reminder", "channel": "letter", "fee": 6001}]},
            "steps[0].fee",
            "at most 6000",
        ),
        (
            {"steps": [{"day": 0, "action": "reminder", "channel": "letter", "fee": 100}]},
            "steps[0].fee",
            "after the due date",
        ),
        (
            {
                "steps": [
                    {"day": 5, "action": "reminder", "channel": "sms", "fee": 6000},
                    {"day": 9, "action": "reminder", "channel": "sms", "fee": 6000},
                ]
            },
            "steps[1].fee",
            "at most once",
        ),
        (
            {
                "steps": [
                    {
                        "day": 30,
                        "action": "collection_notice",
                        "channel": "letter",
                        "fee": 18001,
                        "deadline_days": 8,
                    }
                ]
            },
            "steps[0].fee",
            "at most 18000",
        ),
        (
            {
                "steps": [
                    {
                        "day": 30,
                        "action": "collection_notice",
                        "channel": "letter",
                        "deadline_days": 7,
                    }
                ]
            },
            "steps[0].deadline_days",
            "at least 8",
        ),
        (
            {"steps": [{"day": 30, "action": "collection_notice", "channel": "letter"}]},
            "steps[0].deadline_days",
            "required",
        ),
        (
            {
                "steps": [
                    {"day": 9, "action": "reminder", "channel": "sms"},
                    {"day": 3, "action": "reminder", "channel": "sms"},
                ]
            },
            "steps[1].day",
            "day order",
        ),
        ({"steps": [{"day": 9, "action": "call", "channel": "sms"}]}, "steps[0].action", "one of"),
        (
            {"steps": [{"day": 9, "action": "reminder", "channel": "pigeon"}]},
            "steps[0].channel",
            "one of",
        ),
        (
            {"steps": [{"day": "9", "action": "reminder", "channel": "sms"}]},
            "steps[0].day",
            "integer",
        ),
        (
            {"steps": [{"day": 9.5, "action": "reminder", "channel": "sms"}]},
            "steps[0].day",
            "integer",
        ),
        (
            {"steps": [{"day": 9, "action": "reminder", "channel": "sms", "fee": -1}]},
            "steps[0].fee",
            "at least 0",
        ),
        (
            {"steps": [{"day": 9, "action": "reminder", "channel": "sms", "colour": "red"}]},
            "steps[0].colour",
            "unknown",
        ),
        ({"steps": "weekly"}, "steps", "list"),
        ({"name": ""}, "name", "required"),
        ({"segment": {"debtor_type": "b2g"}}, "segment.debtor_type", "one of"),
        (
            {"segment": {"min_amount": 500, "max_amount": 100}},
            "segment.max_amount",
            "below min_amount",
        ),
        ({"interest": {"mode": "contract"}}, "interest.annual_rate_bp", "required"),
        ({"interest": {"mode": "usury"}}, "interest.mode", "one of"),
        (
            {"payment_plans": {"allowed": True, "setup_fee": 20000}},
            "payment_plans.setup_fee",
            "at most 17000",
        ),
        ({"escalate_after_days": 40}, "escalate_after_days", "before the deadline"),
        ({"compensation": True}, "compensation", "B2B only"),
        ({"unexpected": 1}, "unexpected", "unknown"),
    ],
)
def test_each_violation_is_reported_at_its_path(change, path, fragment):
    found = violations(base(**change))
    assert path in found and fragment in found[path], found


def test_compensation_replaces_fees_for_b2b():
    doc = base(compensation=True, segment={"debtor_type": "b2b"})
    found = violations(doc)
    assert set(found) == {"steps[1].fee", "steps[2].fee"}
    steps = [
        {"day": 10, "action": "reminder", "channel": "email"},
        {"day": 30, "action": "collection_notice", "channel": "letter", "deadline_days": 10},
    ]
    (policy,) = parse_policies(base(compensation=True, segment={"debtor_type": "b2b"}, steps=steps))
    assert policy.compensation


def test_every_violation_of_every_policy_in_a_set_is_listed():
    doc = {
        "policies": [
            base(),
            base(name=""),
            base(steps=[{"day": 1, "action": "reminder", "channel": "x"}]),
        ]
    }
    found = violations(doc)
    assert set(found) == {"policies[1].name", "policies[2].steps[0].channel"}
    assert violations({"policies": []}) == {"policies": "must be a non-empty list of policies"}
    assert "$" in violations([1, 2])


def test_rules_are_configurable():
    strict = Rules(reminder_fee_cap=5000)
    assert "steps[1].fee" in violations(base(), rules=strict)


def test_segment_matching_takes_the_first_policy_that_matches():
    (key, other, consumers) = parse_policies(
        {
            "policies": [
                base(name="key", segment={"debtor_type": "b2b", "min_amount": 5_000_000}),
                base(name="other", segment={"debtor_type": "b2b"}),
                base(name="consumers", segment={"debtor_type": "b2c", "max_amount": 1_000_000}),
            ]
        }
    )
    debtor_type = np.array(["b2b", "b2b", "b2c", "b2c"])
    amount = np.array([6_000_000, 100, 100, 2_000_000])
    assert assign([key, other, consumers], debtor_type, amount).tolist() == [0, 1, 2, -1]
    assert Segment().mask(debtor_type, amount).all()


def test_the_reference_rate_is_the_half_years_and_unknown_past_the_table():
    assert reference_rate_bp("2024-06-30") == 400 and reference_rate_bp("2024-07-01") == 400
    assert reference_rate_bp("2025-01-01") == 250 and reference_rate_bp("2025-12-31") == 200
    assert reference_rate_bp("2021-12-31") is None  # before the table
    table = (("2025-01-01", 250), ("2025-07-01", 200))
    assert reference_rate_bp("2025-12-31", table) == 200
    assert reference_rate_bp("2026-01-01", table) is None  # the 1 January row is missing
    assert reference_rate_bp("2025-06-30", table[:1]) == 250
    assert reference_rate_bp("2025-07-01", table[:1]) is None
