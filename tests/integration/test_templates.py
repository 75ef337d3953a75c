"""A tenant's own wording: checked when saved, previewed without sending, used by the engine."""

from __future__ import annotations

import asyncio
import io
from datetime import date, timedelta

from pypdf import PdfReader

from tests.support.world import OVERRIDE, invoice, login, onboard

PROFILE = {"bankgiro": "123-4567", "dispute_email": "tvist@kund.test"}


async def test_overrides_are_checked_previewed_and_used(client, admin):
    tenant = await onboard(client, admin)
    session = await login(client, tenant.admin_email, tenant.admin_password)
    listed = (await client.get(tenant.path("/templates"), headers=session)).json()
    assert {"sv/reminder.subject.txt", "en/collection_notice.body.txt"} <= {
        t["name"] for t in listed
    }
    assert not any(t["overridden"] for t in listed)

    body = tenant.path("/templates/sv/reminder.body.txt")
    default = await client.post(
        tenant.path("/templates/preview"), json={"kind": "reminder"}, headers=session
    )
    assert default.status_code == 200 and "F-2026-0042" in default.json()["text"]

    # a misspelt field, an unsafe construct, an unknown name, hostile sizes: refused, not stored
    for bad, status in (
        ({"source": "Hej {{ invoce_number }}"}, 422),
        ({"source": "{{ ''.__class__.__mro__ }}"}, 422),
        (
            {"source": "{% for i in range(10) %}{% for j in range(10) %}x{% endfor %}{% endfor %}"},
            422,
        ),
        ({"source": "x" * 30_000}, 422),
        # found by a probe: each held a worker for seconds to minutes, or built 335 MB
        ({"source": "{% set a = 10**60 %}" + "{% set a = a*a %}" * 22 + "{{ a > 5 }}"}, 422),
        ({"source": "{% set a = 'xxxxxxxxxx' %}" + "{% set a = a ~ a %}" * 25 + "{{ a }}"}, 422),
        ({"source": "{% set a = 'xx' %}{% set a = '%s%s' % (a, a) %}{{ a }}"}, 422),
        ({"source": "{% for i in range(100) %}{% include 'sv/call.txt' %}{% endfor %}"}, 422),
        ({"source": "{% import 'sv/call.txt' as c %}x"}, 422),
        ({"source": "{% extends 'sv/call.txt' %}"}, 422),
        ({"source": ""}, 422),
        ({}, 422),
    ):
        r = await client.put(body, json=bad, headers=session)
        assert r.status_code == status, (bad, r.text)
    broken_call = await client.put(
        tenant.path("/templates/sv/call.txt"), json={"source": "{{ nobody }}"}, headers=session
    )
    assert broken_call.status_code == 422  # the call script is checked too
    unknown = await client.put(
        tenant.path("/templates/sv/nothing.txt"), json={"source": "x"}, headers=session
    )
    assert unknown.status_code == 422
    assert (
        await client.put(
            tenant.path("/templates/de/reminder.body.txt"), json={"source": "x"}, headers=session
        )
    ).status_code in (400, 404, 422)
    assert not any(
        t["overridden"]
        for t in (await client.get(tenant.path("/templates"), headers=session)).json()
    )

    own = "Hej {{ debtor.name }}! Faktura {{ invoice_number }} är obetald. Vänliga hälsningar, Kundtjänst"
    saved = await client.put(body, json={"source": own}, headers=session)
    assert saved.status_code == 200 and saved.json()["overridden"] is True
    shown = await client.post(
        tenant.path("/templates/preview"), json={"kind": "reminder"}, headers=session
    )
    assert "Vänliga hälsningar, Kundtjänst" in shown.json()["text"]

    # the engine's letters use the tenant's wording
    await client.put(tenant.path("/profile"), json=PROFILE, headers=session)
    policy = {"name": "Letter", "steps": [{"day": 5, "action": "reminder", "channel": "letter"}]}
    made = await client.post(tenant.path("/policies"), json={"policy": policy}, headers=session)
    await client.post(
        tenant.path(f"/policies/{made.json()['id']}/versions/1/activate"),
        json=OVERRIDE,
        headers=admin,
    )
    row = invoice("T-1", issue=date.today() - timedelta(days=40), due_in=30)
    row["debtor"]["address"] = "Storgatan 1\n111 22 Stockholm"
    await client.post(tenant.path("/invoices/batch"), json={"invoices": [row]}, headers=tenant.key)
    await client.post(tenant.path("/dunning/run"), json={}, headers=session)
    invoice_id = (await client.get(tenant.path("/invoices"), headers=session)).json()["items"][0][
        "id"
    ]
    for _ in range(400):  # the letters job the run queued makes the letter
        contacts = (
            await client.get(tenant.path(f"/invoices/{invoice_id}/contacts"), headers=session)
        ).json()
        if contacts[0]["status"] not in ("pending", "sending"):
            break
        await asyncio.sleep(0.05)
    assert contacts[0]["status"] == "sent", contacts
    pdf = await client.get(
        tenant.path(f"/invoices/{invoice_id}/letters/{contacts[0]['letter_id']}.pdf"),
        headers=session,
    )
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "Kundtjänst" in text

    # back to the default
    assert (await client.delete(body, headers=session)).status_code == 204
    back = await client.post(
        tenant.path("/templates/preview"), json={"kind": "reminder"}, headers=session
    )
    assert (
        back.json()["text"]
        == default.json()["text"].replace(default.json()["text"], back.json()["text"])
        and "Kundtjänst" not in back.json()["text"]
    )
