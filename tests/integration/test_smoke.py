from tests.support.world import agency_user, onboard


async def test_onboard_and_push(client):
    admin = await agency_user(client)
    tenant = await onboard(client, admin)
    r = await client.get("/api/v1/me", headers=tenant.key)
    assert r.status_code == 200
    assert r.json()["tenant_id"] == tenant.id
