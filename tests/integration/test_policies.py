"""Policies per tenant: versions draft → live → retired, segments, rules with paths, audit."""

from __future__ import annotations

import copy
from typing import Any

from tests.support.world import OVERRIDE, api_key, login, onboard, tenant_user

B2C: dict[str, Any] = {
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
}
B2B: dict[str, Any] = {
    "name": "B2B compensation",
    "segment": {"debtor_type": "b2b"},
    "steps": [{"day": 5, "action": "reminder", "channel": "email"}],
    "compensation": True,
}


def variant(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(base), **changes}


async def _admin(client, admin):
    tenant = await onboard(client, admin)
    return tenant, await login(client, tenant.admin_email, tenant.admin_password)


async def test_a_policy_goes_draft_live_retired_and_live_is_never_changed(client, admin):
    tenant, session = await _admin(client, admin)
    created = await client.post(tenant.path("/policies"), json={"policy": B2C}, headers=session)
    assert created.status_code == 201, created.text
    policy = created.json()
    assert policy["versions"][0]["number"] == 1 and policy["versions"][0]["status"] == "draft"
    assert policy["live_version"] is None and policy["versions"][0]["policy"] == B2C
    base = tenant.path(f"/policies/{policy['id']}")

    live = await client.post(base + "/versions/1/activate", json=OVERRIDE, headers=admin)
    assert live.status_code == 200 and live.json()["status"] == "live", live.text
    assert live.json()["activated_by"].startswith("user:")

    # a new version is a draft beside the live one; the live one is untouched
    changed = variant(B2C, escalate_after_days=90)
    v2 = await client.post(base + "/versions", json={"policy": changed}, headers=session)
    assert v2.status_code == 201 and v2.json()["number"] == 2 and v2.json()["status"] == "draft"
    now = (await client.get(base, headers=session)).json()
    assert now["live_version"] == 1 and now["versions"][0]["policy"] == B2C

    # activating v2 retires v1; a retired or live version cannot go live again
    assert (
        await client.post(base + "/versions/2/activate", json=OVERRIDE, headers=admin)
    ).status_code == 200
    now = (await client.get(base, headers=session)).json()
    assert [v["status"] for v in now["versions"]] == ["retired", "live"]
    again = await client.post(base + "/versions/1/activate", json=OVERRIDE, headers=admin)
    assert again.status_code == 409 and "retired" in again.json()["message"]
    assert (
        await client.post(base + "/versions/2/activate", json=OVERRIDE, headers=admin)
    ).status_code == 409

    # retiring stops it
    stopped = await client.post(base + "/versions/2/retire", headers=session)
    assert stopped.status_code == 200 and stopped.json()["status"] == "retired"
    assert (await client.get(base, headers=session)).json()["live_version"] is None

    audit = (await client.get(tenant.path("/audit?limit=100"), headers=session)).json()["items"]
    actions = [e["action"] for e in audit if e["object_id"] == policy["id"]]
    assert {
        "policy.created",
        "policy.version_created",
        "policy.activated",
        "policy.retired",
    } <= set(actions)


async def test_segments_one_live_version_each_and_no_overlap(client, admin):
    tenant, session = await _admin(client, admin)

    async def live(doc: dict[str, Any]) -> tuple[str, Any]:
        made = await client.post(tenant.path("/policies"), json={"policy": doc}, headers=session)
        assert made.status_code == 201, made.text
        policy_id = made.json()["id"]
        r = await client.post(
            tenant.path(f"/policies/{policy_id}/versions/1/activate"), json=OVERRIDE, headers=admin
        )
        return policy_id, r

    b2c, r = await live(B2C)
    assert r.status_code == 200
    b2b, r = await live(B2B)
    assert r.status_code == 200  # another segment: both live
    # the same segment in another policy: the previous live version of that segment retires
    same, r = await live(variant(B2C, name="Softer B2C"))
    assert r.status_code == 200
    assert (await client.get(tenant.path(f"/policies/{b2c}"), headers=session)).json()[
        "live_version"
    ] is None
    # an overlapping, different segment is refused and names what it overlaps
    wide, r = await live(variant(B2C, name="Everyone", segment={"min_amount": 100_000}))
    assert r.status_code == 409 and "overlaps" in r.json()["message"]
    listing = (await client.get(tenant.path("/policies"), headers=session)).json()["items"]
    assert {p["id"]: p["live_version"] for p in listing} == {b2c: None, b2b: 1, same: 1, wide: None}


async def test_every_rule_violation_is_named_by_its_path_and_nothing_is_stored(client, admin):
    tenant, session = await _admin(client, admin)
    bad = variant(
        B2C,
        steps=[
            {"day": -3, "action": "reminder", "channel": "email", "fee": 6000},
            {"day": 10, "action": "reminder", "channel": "pigeon", "fee": 9000},
            {"day": 5, "action": "collection_notice", "channel": "letter", "deadline_days": 3},
        ],
    )
    r = await client.post(tenant.path("/policies"), json={"policy": bad}, headers=session)
    assert r.status_code == 422, r.text
    paths = {e["path"] for e in r.json()["errors"]}
    assert {
        "policy.steps[0].fee",
        "policy.steps[1].channel",
        "policy.steps[1].fee",
        "policy.steps[2].day",
        "policy.steps[2].deadline_days",
    } <= paths
    b2c_compensation = variant(B2B, segment={"debtor_type": "b2c"})
    r = await client.post(
        tenant.path("/policies"), json={"policy": b2c_compensation}, headers=session
    )
    assert r.status_code == 422 and "policy.compensation" in {e["path"] for e in r.json()["errors"]}
    for hostile in (
        {"policy": {"policies": [B2C]}},
        {"policy": []},
        {"policy": {"name": "x" * 500}},
        {"policy": variant(B2C, name="a\u0000b")},
        {"policy": variant(B2C, name="two\nlines")},
        {"policy": B2C, "extra": 1},
        {"policy": variant(B2C, steps=[{"day": 10**12, "action": "reminder", "channel": "sms"}])},
        {"policy": variant(B2C, steps="all of them")},
        {},
    ):
        r = await client.post(tenant.path("/policies"), json=hostile, headers=session)
        assert r.status_code in (400, 422), (hostile, r.status_code, r.text)
    assert (await client.get(tenant.path("/policies"), headers=session)).json()["items"] == []


async def test_who_may_draft_and_who_may_go_live(client, admin):
    tenant, session = await _admin(client, admin)
    member = await tenant_user(client, tenant, session, "tenant_member")
    key = await api_key(client, tenant, session, ["policies:write"])
    for author in (member, key):
        r = await client.post(tenant.path("/policies"), json={"policy": B2C}, headers=author)
        assert r.status_code == 201, r.text
    policy_id = r.json()["id"]
    activate = tenant.path(f"/policies/{policy_id}/versions/1/activate")
    for refused in (member, key):
        assert (await client.post(activate, headers=refused)).status_code == 403
    # an override reason is the agency_admin's alone
    r = await client.post(activate, json={"override_reason": "trust me"}, headers=session)
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "override_reason"
    r = await client.post(activate, json={"override_reason": "client asked"}, headers=admin)
    assert r.status_code == 200 and r.json()["status"] == "live"
    # another tenant's policy is missing, not forbidden
    other, other_session = await _admin(client, admin)
    r = await client.get(other.path(f"/policies/{policy_id}"), headers=other_session)
    assert r.status_code == 404
    r = await client.get(tenant.path(f"/policies/{policy_id}"), headers=other_session)
    assert r.status_code == 404


async def test_missing_versions_and_policies_are_404(client, admin):
    tenant, session = await _admin(client, admin)
    made = await client.post(tenant.path("/policies"), json={"policy": B2C}, headers=session)
    base = tenant.path(f"/policies/{made.json()['id']}")
    assert (
        await client.post(base + "/versions/7/activate", json=OVERRIDE, headers=admin)
    ).status_code == 404
    assert (
        await client.post(base + "/versions/0/activate", json=OVERRIDE, headers=admin)
    ).status_code in (
        400,
        404,
        422,
    )
    missing = tenant.path("/policies/00000000-0000-4000-8000-000000000000")
    assert (await client.get(missing, headers=session)).status_code == 404
    r = await client.post(missing + "/versions", json={"policy": B2C}, headers=session)
    assert r.status_code == 404
