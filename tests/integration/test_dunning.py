"""The live dunning engine over HTTP: one step per invoice per run, fees once, exactly once,
the preview agreeing with the run, real SMTP delivery, letters as PDF."""

from __future__ import annotations

import asyncio
import io
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from tests.channels.servers import MailSink, free_port
from tests.support.server import LiveServer
from tests.support.world import OVERRIDE, agency_user, invoice, login, onboard

POLICY: dict[str, Any] = {
    "name": "Three steps",
    "segment": {"debtor_type": "b2c"},
    "steps": [
        {"day": -3, "action": "reminder", "channel": "email"},
        {"day": 1, "action": "reminder", "channel": "email"},
        {"day": 10, "action": "reminder", "channel": "letter", "fee": 6000},
        {
            "day": 20,
            "action": "collection_notice",
            "channel": "letter",
            "fee": 18000,
            "deadline_days": 10,
        },
    ],
}
PROFILE = {"bankgiro": "123-4567", "dispute_email": "tvist@kund.test", "language": "sv"}


@pytest.fixture(scope="module")
def mail():
    sink = MailSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield sink, controller.port
    controller.stop()


@pytest.fixture(scope="module")
def engine_server(migrated, mail):
    _, port = mail
    live = LiveServer(KRAVLAB_SMTP_HOST="127.0.0.1", KRAVLAB_SMTP_PORT=str(port)).start()
    yield live
    live.stop()


async def _setup(http, admin, *, profile=True, rows=None):
    tenant = await onboard(http, admin)
    session = await login(http, tenant.admin_email, tenant.admin_password)
    if profile:
        r = await http.put(tenant.path("/profile"), json=PROFILE, headers=session)
        assert r.status_code == 200, r.text
    made = await http.post(tenant.path("/policies"), json={"policy": POLICY}, headers=session)
    policy_id = made.json()["id"]
    r = await http.post(
        tenant.path(f"/policies/{policy_id}/versions/1/activate"), json=OVERRIDE, headers=admin
    )
    assert r.status_code == 200, r.text
    today = date.today()
    debtor = {"email": "kund@example.se", "address": "Storgatan 1\n111 22 Stockholm"}
    rows = rows or [
        invoice(
            "LATE", debtor="D-LATE", issue=today - timedelta(days=60), due_in=35, fee_agreed=True
        ),
        invoice("PAID", debtor="D-PAID", issue=today - timedelta(days=60), due_in=35),
        invoice("DISPUTED", debtor="D-DIS", issue=today - timedelta(days=60), due_in=35),
        invoice("PAUSED", debtor="D-PAU", issue=today - timedelta(days=60), due_in=35),
        invoice("FUTURE", debtor="D-FUT", issue=today, due_in=30),
    ]
    for row in rows:
        row["debtor"].update(debtor)
    r = await http.post(tenant.path("/invoices/batch"), json={"invoices": rows}, headers=tenant.key)
    assert r.status_code == 200, r.text
    ids = {
        i["external_id"]: i["id"]
        for i in (await http.get(tenant.path("/invoices?limit=100"), headers=session)).json()[
            "items"
        ]
    }
    if "PAID" in ids:
        pay = {
            "external_id": "P-1",
            "amount": 100_000,
            "currency": "SEK",
            "paid_date": today.isoformat(),
            "invoice_external_id": "PAID",
        }
        await http.post(
            tenant.path("/payments/batch"), json={"payments": [pay]}, headers=tenant.key
        )
        await http.post(
            tenant.path(f"/invoices/{ids['DISPUTED']}/dispute"),
            json={"reason": "wrong amount"},
            headers=session,
        )
        await http.post(
            tenant.path(f"/invoices/{ids['PAUSED']}/pause"),
            json={"reason": "talking"},
            headers=session,
        )
    return tenant, session, ids


WAITING = ("pending", "sending")


async def _contacts(http, tenant, session, invoice_id):
    """An invoice's contacts once its letters are made: the letters job the run queues
    renders them after the run has answered."""
    contacts: list[dict[str, Any]] = []
    for _ in range(400):
        r = await http.get(tenant.path(f"/invoices/{invoice_id}/contacts"), headers=session)
        contacts = r.json()
        if not any(c["channel"] == "letter" and c["status"] in WAITING for c in contacts):
            break
        await asyncio.sleep(0.05)
    return contacts


async def test_one_step_per_run_fees_once_and_the_preview_is_the_run(engine_server, admin, mail):
    sink, _ = mail
    async with httpx.AsyncClient(base_url=engine_server.url, timeout=120) as http:
        tenant, session, ids = await _setup(http, admin)
        today = date.today()
        days = [today - timedelta(days=2), today - timedelta(days=1), today]
        # The invoice is 25 days late: its pre-due step is skipped, and the three steps that
        # came due go out one per run, not stacked on one day.
        seen = []
        for on in days:
            preview = await http.get(
                tenant.path(f"/dunning/preview?date={on.isoformat()}"), headers=session
            )
            assert preview.status_code == 200, preview.text
            planned = preview.json()
            run = await http.post(
                tenant.path("/dunning/run"), json={"date": on.isoformat()}, headers=session
            )
            assert run.status_code == 200, run.text
            assert run.json()["recorded"] == planned["contacts"]
            assert run.json()["fees"] == planned["fees"]
            seen.append(
                [
                    (s["external_id"], s["ordinal"], s["channel"], s["fee"], s["skipped"])
                    for s in planned["steps"]
                ]
            )
        assert seen == [
            [("LATE", 0, "email", 0, True), ("LATE", 1, "email", 0, False)],
            [("LATE", 2, "letter", 6000, False)],
            [("LATE", 3, "letter", 18000, False)],
        ]
        # the same date again: nothing more, and it says so
        again = await http.post(tenant.path("/dunning/run"), json={}, headers=session)
        assert again.json()["recorded"] == 0 and again.json()["already_run"] is True
        detail = (await http.get(tenant.path(f"/invoices/{ids['LATE']}"), headers=session)).json()
        assert detail["fees"] == 24000
        contacts = await _contacts(http, tenant, session, ids["LATE"])
        assert [(c["ordinal"], c["status"]) for c in contacts] == [
            (0, "skipped"),
            (1, "sent"),
            (2, "sent"),
            (3, "sent"),
        ]
        for other in ("PAID", "DISPUTED", "PAUSED", "FUTURE"):
            r = await http.get(tenant.path(f"/invoices/{ids[other]}/contacts"), headers=session)
            assert r.json() == [], other
        # the email arrived through real SMTP, with the letter attached
        mails = [m for m in sink.received if "kund@example.se" in m.rcpt_tos]
        assert len(mails) >= 1
        # the letters are PDFs that say what a collection notice must say
        from pypdf import PdfReader

        letter = contacts[3]["letter_id"]
        pdf = await http.get(
            tenant.path(f"/invoices/{ids['LATE']}/letters/{letter}.pdf"), headers=session
        )
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
        text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
        assert "LATE" in text and "123-4567" in text and "180,00" in text


async def test_concurrent_runs_record_each_step_once(engine_server, admin):
    async with httpx.AsyncClient(base_url=engine_server.url, timeout=120) as http:
        today = date.today()
        rows = [
            invoice(
                f"C-{i}",
                debtor=f"D-{i}",
                issue=today - timedelta(days=40),
                due_in=30,
                fee_agreed=True,
            )
            for i in range(20)
        ]
        tenant, session, ids = await _setup(http, admin, rows=rows)
        on = (today - timedelta(days=0)).isoformat()
        answers = await asyncio.gather(
            *(
                http.post(tenant.path("/dunning/run"), json={"date": on}, headers=session)
                for _ in range(4)
            )
        )
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
        assert sum(a.json()["recorded"] for a in answers) == 20
        delivered = [a.json()["delivery"] for a in answers]
        assert sum(d.get("sent", 0) for d in delivered) == 20, delivered  # each mail once
        for external_id in ("C-0", "C-19"):
            contacts = (
                await http.get(
                    tenant.path(f"/invoices/{ids[external_id]}/contacts"), headers=session
                )
            ).json()
            assert [c["ordinal"] for c in contacts if c["status"] != "skipped"] == [1]


async def test_a_contact_that_cannot_go_out_charges_nothing(engine_server, admin):
    async with httpx.AsyncClient(base_url=engine_server.url, timeout=120) as http:
        today = date.today()
        rows = [
            invoice(
                "NOPROFILE",
                debtor="D-N",
                issue=today - timedelta(days=45),
                due_in=30,
                fee_agreed=True,
            )
        ]
        tenant, session, ids = await _setup(http, admin, profile=False, rows=rows)
        for back in (2, 1):
            on = (today - timedelta(days=back)).isoformat()
            r = await http.post(tenant.path("/dunning/run"), json={"date": on}, headers=session)
            assert r.status_code == 200
        contacts = await _contacts(http, tenant, session, ids["NOPROFILE"])
        letter = next(c for c in contacts if c["channel"] == "letter")
        assert letter["status"] == "failed" and "bankgiro" in letter["last_error"]
        detail = (
            await http.get(tenant.path(f"/invoices/{ids['NOPROFILE']}"), headers=session)
        ).json()
        assert detail["fees"] == 0


async def test_bad_input_to_the_engine(engine_server, admin):
    async with httpx.AsyncClient(base_url=engine_server.url, timeout=120) as http:
        tenant = await onboard(http, admin)
        session = await login(http, tenant.admin_email, tenant.admin_password)
        future = (date.today() + timedelta(days=1)).isoformat()
        cases = [
            ("post", "/dunning/run", {"date": future}, 422),
            ("post", "/dunning/run", {"date": "2026-02-30"}, 422),
            ("post", "/dunning/run", {"when": "now"}, 422),
            ("get", "/dunning/preview?date=yesterday", None, 422),
            ("get", "/dunning/preview?date=9999-12-31", None, 422),  # was a 500 (overflow)
            ("post", "/dunning/run", {"date": "0001-01-01"}, 422),
            ("put", "/profile", {"bankgiro": "12"}, 422),
            ("put", "/profile", {"dispute_email": "a@b.c\r\nBcc: x@y.z"}, 422),
            ("put", "/profile", {"language": "de"}, 422),
        ]
        for method, path, body, status in cases:
            r = await getattr(http, method)(
                tenant.path(path), headers=session, **({"json": body} if body is not None else {})
            )
            assert r.status_code == status, (method, path, body, r.status_code, r.text)
        missing = tenant.path(
            "/invoices/00000000-0000-4000-8000-000000000000/letters/"
            "00000000-0000-4000-8000-000000000000.pdf"
        )
        assert (await http.get(missing, headers=session)).status_code == 404
        for name in ("x.pdf", "../../etc/passwd", "00000000-0000-4000-8000-000000000000"):
            r = await http.get(
                tenant.path(f"/invoices/00000000-0000-4000-8000-000000000000/letters/{name}"),
                headers=session,
            )
            assert r.status_code == 404, name


async def test_the_daily_run_happens_by_itself(migrated, admin, mail):
    """The in-process scheduler makes today's run for every active tenant (idempotent per
    date, so running it every second here takes each step once)."""
    _, port = mail
    live = LiveServer(
        KRAVLAB_SMTP_HOST="127.0.0.1",
        KRAVLAB_SMTP_PORT=str(port),
        KRAVLAB_DUNNING_INTERVAL_SECONDS="1",
    ).start()
    try:
        async with httpx.AsyncClient(base_url=live.url, timeout=120) as http:
            today = date.today()
            rows = [
                invoice(
                    "AUTO",
                    debtor="D-A",
                    issue=today - timedelta(days=40),
                    due_in=30,
                    fee_agreed=True,
                )
            ]
            tenant, session, ids = await _setup(http, admin, rows=rows)
            path = tenant.path(f"/invoices/{ids['AUTO']}/contacts")
            for _ in range(120):
                contacts = (await http.get(path, headers=session)).json()
                if any(c["status"] == "sent" for c in contacts):
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(3)  # a few more runs of the same date
            contacts = (await http.get(path, headers=session)).json()
            assert [(c["ordinal"], c["status"]) for c in contacts] == [(0, "skipped"), (1, "sent")]
            assert {c["run_date"] for c in contacts} == {today.isoformat()}
    finally:
        live.stop()


async def test_each_run_brings_late_interest_up_to_date(engine_server, admin):
    async with httpx.AsyncClient(base_url=engine_server.url, timeout=120) as http:
        today = date.today()
        tenant = await onboard(http, admin)
        session = await login(http, tenant.admin_email, tenant.admin_password)
        await http.put(tenant.path("/profile"), json=PROFILE, headers=session)
        for segment, interest in (
            ({"debtor_type": "b2c"}, {"mode": "contract", "annual_rate_bp": 1000}),
            ({"debtor_type": "b2b"}, {"mode": "statutory"}),
        ):
            doc = {**POLICY, "name": str(interest), "segment": segment, "interest": interest}
            made = await http.post(tenant.path("/policies"), json={"policy": doc}, headers=session)
            await http.post(
                tenant.path(f"/policies/{made.json()['id']}/versions/1/activate"),
                json=OVERRIDE,
                headers=admin,
            )
        rows = [
            invoice("CONTRACT", debtor="D-C", issue=today - timedelta(days=55), due_in=30),
            invoice(
                "STATUTORY",
                debtor="D-S",
                issue=today - timedelta(days=55),
                due_in=30,
                debtor_type="b2b",
            ),
        ]
        await http.post(tenant.path("/invoices/batch"), json={"invoices": rows}, headers=tenant.key)
        await http.post(tenant.path("/dunning/run"), json={}, headers=session)
        listed = (await http.get(tenant.path("/invoices?limit=10"), headers=session)).json()
        by_id = {i["external_id"]: i for i in listed["items"]}
        # 1 000 kr at 10 % a year for the 25 days since due: 6.849 kr, rounded once, half up
        assert by_id["CONTRACT"]["interest_accrued"] == 685
        assert by_id["CONTRACT"]["interest_as_of"] == today.isoformat()
        rates = (await http.get("/api/v1/reference-rates", headers=session)).json()
        statutory = by_id["STATUTORY"]["interest_accrued"]
        if rates["current_missing"]:
            assert statutory is None  # unknown, never a silent zero
        else:
            assert statutory > 0


async def test_phone_steps_are_call_tasks_whose_outcome_steers_the_flow(engine_server, admin):
    async with httpx.AsyncClient(base_url=engine_server.url, timeout=120) as http:
        today = date.today()
        tenant = await onboard(http, admin)
        session = await login(http, tenant.admin_email, tenant.admin_password)
        await http.put(tenant.path("/profile"), json=PROFILE, headers=session)
        doc = {
            "name": "Calls",
            "steps": [
                {"day": 5, "action": "reminder", "channel": "phone"},
                {"day": 12, "action": "reminder", "channel": "email"},
            ],
        }
        made = await http.post(tenant.path("/policies"), json={"policy": doc}, headers=session)
        await http.post(
            tenant.path(f"/policies/{made.json()['id']}/versions/1/activate"),
            json=OVERRIDE,
            headers=admin,
        )
        rows = [
            invoice(f"CALL-{i}", debtor=f"D-{i}", issue=today - timedelta(days=40), due_in=30)
            for i in range(3)
        ]
        for row in rows:
            row["debtor"].update({"phone": "+46701234567", "email": "kund@example.se"})
        await http.post(tenant.path("/invoices/batch"), json={"invoices": rows}, headers=tenant.key)
        on = (today - timedelta(days=3)).isoformat()  # day 7 after due: the call's day
        assert (
            await http.post(tenant.path("/dunning/run"), json={"date": on}, headers=session)
        ).json()["recorded"] == 3
        staff = await agency_user(http, "agency_staff")
        calls = (await http.get("/api/v1/calls?limit=1000", headers=staff)).json()
        mine = {c["invoice_external_id"]: c for c in calls if c["tenant"] == tenant.id}
        assert set(mine) == {"CALL-0", "CALL-1", "CALL-2"}
        assert mine["CALL-0"]["phone"] == "+46701234567"

        def outcome_path(c):
            return tenant.path(f"/invoices/{c['invoice']}/contacts/{c['id']}/outcome")

        promise = (today + timedelta(days=5)).isoformat()
        bad = await http.post(
            outcome_path(mine["CALL-0"]), json={"outcome": "promise_to_pay"}, headers=staff
        )
        assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "promised_date"
        refused = await http.post(
            outcome_path(mine["CALL-0"]), json={"outcome": "reached"}, headers=session
        )
        assert refused.status_code == 403  # the agency's staff make the calls
        r = await http.post(
            outcome_path(mine["CALL-0"]),
            json={"outcome": "promise_to_pay", "promised_date": promise, "note": "pays Friday"},
            headers=staff,
        )
        assert r.status_code == 200 and r.json()["counted"] is True
        again = await http.post(
            outcome_path(mine["CALL-0"]), json={"outcome": "reached"}, headers=staff
        )
        assert again.status_code == 409  # not an open call task any more
        r = await http.post(
            outcome_path(mine["CALL-1"]), json={"outcome": "no_answer"}, headers=staff
        )
        assert r.json()["counted"] is False
        r = await http.post(
            outcome_path(mine["CALL-2"]), json={"outcome": "dispute"}, headers=staff
        )
        assert r.status_code == 200

        statuses = {
            i["external_id"]: (i["status"], i["paused_until"])
            for i in (await http.get(tenant.path("/invoices"), headers=session)).json()["items"]
        }
        assert statuses["CALL-0"] == ("paused", promise)
        assert statuses["CALL-2"][0] == "disputed"
        # The promise holds the flow until its date; broken, the flow resumes the day after.
        later = (today + timedelta(days=3)).isoformat()
        held = await http.get(tenant.path(f"/dunning/preview?date={later}"), headers=session)
        assert {s["external_id"] for s in held.json()["steps"]} == {"CALL-1"}
        after = (today + timedelta(days=6)).isoformat()
        resumed = await http.get(tenant.path(f"/dunning/preview?date={after}"), headers=session)
        assert {s["external_id"] for s in resumed.json()["steps"]} == {"CALL-0", "CALL-1"}


async def test_runs_go_forward_a_past_date_cannot_send_later_steps(engine_server, admin):
    """Found by a probe: after today's run, a run dated yesterday took the next step (with
    its fee) dated before the one already sent."""
    async with httpx.AsyncClient(base_url=engine_server.url, timeout=120) as http:
        today = date.today()
        rows = [
            invoice(
                "FWD", debtor="D-F", issue=today - timedelta(days=60), due_in=30, fee_agreed=True
            )
        ]
        tenant, session, ids = await _setup(http, admin, rows=rows)
        first = await http.post(tenant.path("/dunning/run"), json={}, headers=session)
        assert first.json()["recorded"] == 1
        back = (today - timedelta(days=1)).isoformat()
        r = await http.post(tenant.path("/dunning/run"), json={"date": back}, headers=session)
        assert r.status_code == 422 and "forward" in r.json()["message"]
        preview = await http.get(tenant.path(f"/dunning/preview?date={back}"), headers=session)
        assert preview.json()["steps"] == []  # nothing dated before a step already taken
        contacts = (
            await http.get(tenant.path(f"/invoices/{ids['FWD']}/contacts"), headers=session)
        ).json()
        assert len([c for c in contacts if c["status"] != "skipped"]) == 1


def _system():
    from uuid import UUID

    from tenants.access import ROLE_GRANTS, Principal

    return Principal(
        "system", UUID(int=0), None, "agency_admin", grants=ROLE_GRANTS["agency_admin"]
    )


async def test_imported_history_is_left_alone(engine_server, admin):
    """Invoices an import loaded (`origin = 'import'`) are the simulator's history: the engine
    plans no step for them, charges them nothing, opens no case and accrues no interest."""
    from backend.tables import Invoice

    async with httpx.AsyncClient(base_url=engine_server.url, timeout=120) as http:
        today = date.today()
        rows = [
            invoice(
                f"{kind}-{i}",
                debtor=f"D-{kind}-{i}",
                issue=today - timedelta(days=60),
                due_in=35,
                fee_agreed=True,
            )
            for kind in ("LIVE", "OLD")
            for i in range(3)
        ]
        tenant, session, ids = await _setup(http, admin, rows=rows)
        old = [ids[f"OLD-{i}"] for i in range(3)]
        await Invoice.update({Invoice.origin: "import"}).where(Invoice.id.is_in(old))
        preview = (await http.get(tenant.path("/dunning/preview"), headers=session)).json()
        assert {s["external_id"] for s in preview["steps"]} == {f"LIVE-{i}" for i in range(3)}
        run = await http.post(tenant.path("/dunning/run"), json={}, headers=session)
        assert run.status_code == 200 and run.json()["recorded"] == 3
        for invoice_id in old:
            assert await _contacts(http, tenant, session, invoice_id) == []
            detail = (
                await http.get(tenant.path(f"/invoices/{invoice_id}"), headers=session)
            ).json()
            assert detail["fees"] == 0 and detail["interest_as_of"] is None
        live = (await http.get(tenant.path(f"/invoices/{ids['LIVE-0']}"), headers=session)).json()
        assert live["interest_as_of"] == today.isoformat()


async def test_interest_in_sql_is_the_statement_figure(engine_server, admin):
    """The run computes interest in SQL for invoices without payments and through the
    statement for those with; both agree with `statement` itself, and a second run the same
    day changes nothing."""
    from uuid import UUID

    from backend.interest import InterestTerms
    from backend.reference_rates import load
    from backend.statement import statement
    from backend.tables import Invoice

    async with httpx.AsyncClient(base_url=engine_server.url, timeout=120) as http:
        today = date.today()
        tenant = await onboard(http, admin)
        session = await login(http, tenant.admin_email, tenant.admin_password)
        await http.put(tenant.path("/profile"), json=PROFILE, headers=session)
        doc = {
            **POLICY,
            "name": "contract",
            "segment": {},
            "interest": {"mode": "contract", "annual_rate_bp": 1250},
        }
        made = await http.post(tenant.path("/policies"), json={"policy": doc}, headers=session)
        await http.post(
            tenant.path(f"/policies/{made.json()['id']}/versions/1/activate"),
            json=OVERRIDE,
            headers=admin,
        )
        amounts = [100, 99_999, 123_457, 5_000_000, 987_654_321, 300_000_000_000]
        rows = [
            invoice(
                f"I-{i}",
                debtor=f"D-{i}",
                amount=amount,
                issue=today - timedelta(days=30 + 17 * i),
                due_in=20,
                debtor_type="b2b" if i % 2 else "b2c",
            )
            for i, amount in enumerate(amounts)
        ]
        r = await http.post(
            tenant.path("/invoices/batch"), json={"invoices": rows}, headers=tenant.key
        )
        assert r.status_code == 200, r.text
        # a partial payment on one: its figure goes through the statement
        paid_on = today - timedelta(days=5)
        pay = {
            "external_id": "P-1",
            "amount": 40_000,
            "currency": "SEK",
            "paid_date": paid_on.isoformat(),
            "invoice_external_id": "I-2",
        }
        r = await http.post(
            tenant.path("/payments/batch"), json={"payments": [pay]}, headers=tenant.key
        )
        assert r.status_code == 200, r.text
        run = await http.post(tenant.path("/dunning/run"), json={}, headers=session)
        assert run.status_code == 200, run.text
        terms = InterestTerms("contract", 1250)
        rates = await load()
        tid = UUID(tenant.id)

        async def figures():
            return {
                r["external_id"]: r
                for r in await Invoice.select(
                    Invoice.external_id,
                    Invoice.due_date,
                    Invoice.amount,
                    Invoice.interest_accrued,
                    Invoice.interest_as_of,
                ).where(Invoice.tenant == tid)
            }

        first = await figures()
        for i, amount in enumerate(amounts):
            row = first[f"I-{i}"]
            due = (
                row["due_date"]
                if isinstance(row["due_date"], date)
                else date.fromisoformat(row["due_date"])
            )
            payments = [(paid_on, 40_000)] if i == 2 else []
            expected = statement(amount, due, today, terms, rates, payments=payments)
            assert row["interest_accrued"] == expected.owed.interest, (i, amount)
            assert str(row["interest_as_of"]) == today.isoformat()
        assert first["I-4"]["interest_accrued"] > 0  # I-5: above the SQL route's amounts
        again = await http.post(tenant.path("/dunning/run"), json={}, headers=session)
        assert again.status_code == 200
        assert await figures() == first


async def test_batched_delivery_sends_each_contact_once(engine_server, admin):
    """Two deliveries at once, each claiming a few steps at a time: every contact goes out
    exactly once, each with its own step id as the provider's reference."""
    from uuid import UUID

    from backend import dunning
    from backend.channels import SendResult
    from tenants.scope import TenantScope

    class Recorder:
        def __init__(self) -> None:
            self.references: list[str] = []

        async def send(self, message, *, overrides=None, reference=None):
            await asyncio.sleep(0.001)  # let the other delivery interleave
            self.references.append(reference)
            return SendResult(status="sent", channel="email", provider_id=f"p-{reference}")

    async with httpx.AsyncClient(base_url=engine_server.url, timeout=120) as http:
        today = date.today()
        rows = [
            invoice(f"B-{i}", debtor=f"D-B-{i}", issue=today - timedelta(days=37), due_in=35)
            for i in range(23)
        ]
        tenant, session, ids = await _setup(http, admin, rows=rows)
        scope = await TenantScope.open(UUID(tenant.id), _system())
        planned, _ = await dunning.record(scope, today)
        emails = [s for s in planned.contacts if s.channel == "email"]
        assert len(emails) == 23
        recorder = Recorder()
        counts = await asyncio.gather(
            dunning.deliver(scope, {"email": recorder}, today, batch=4),
            dunning.deliver(scope, {"email": recorder}, today, batch=3),
        )
        assert sum(c.get("sent", 0) for c in counts) == 23
        assert len(recorder.references) == 23 == len(set(recorder.references))
        contacts = await _contacts(http, tenant, session, ids["B-0"])
        sent = [c for c in contacts if c["status"] == "sent"]
        assert len(sent) == 1 and sent[0]["attempts"] == 1
        assert await dunning.deliver(scope, {"email": recorder}, today) == {}


@pytest.mark.redis
async def test_the_letters_job_runs_in_an_rq_worker(engine_server, admin, settings, redis_url):
    """The run queues its letters as a job of their own; a real RQ worker makes them."""
    import os
    import subprocess
    import sys
    from dataclasses import replace
    from uuid import UUID

    from redis import Redis

    from backend import dunning, jobs, queue
    from tenants.scope import TenantScope

    async with httpx.AsyncClient(base_url=engine_server.url, timeout=120) as http:
        today = date.today()
        tenant = await onboard(http, admin)
        session = await login(http, tenant.admin_email, tenant.admin_password)
        await http.put(tenant.path("/profile"), json=PROFILE, headers=session)
        letters = {
            "name": "Letters",
            "steps": [{"day": 5, "action": "reminder", "channel": "letter"}],
        }
        made = await http.post(tenant.path("/policies"), json={"policy": letters}, headers=session)
        await http.post(
            tenant.path(f"/policies/{made.json()['id']}/versions/1/activate"),
            json=OVERRIDE,
            headers=admin,
        )
        rows = [
            invoice(f"L-{i}", debtor=f"D-L-{i}", issue=today - timedelta(days=40), due_in=30)
            for i in range(4)
        ]
        for row in rows:
            row["debtor"]["address"] = "Storgatan 1\n111 22 Stockholm"
        r = await http.post(
            tenant.path("/invoices/batch"), json={"invoices": rows}, headers=tenant.key
        )
        assert r.status_code == 200, r.text
        scope = await TenantScope.open(UUID(tenant.id), _system())
        planned, _ = await dunning.record(scope, today)
        assert len(planned.contacts) == 4
        Redis.from_url(redis_url).flushdb()
        with_redis = replace(settings, redis_url=redis_url)
        assert queue.enqueue(with_redis, jobs.render_letters, tenant.id, today.isoformat())
        worker = subprocess.run(
            [sys.executable, "-m", "backend.cli", "worker", "--burst"],
            env={**os.environ, "REDIS_URL": redis_url},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert worker.returncode == 0, worker.stdout + worker.stderr
        ids = {
            i["external_id"]: i["id"]
            for i in (await http.get(tenant.path("/invoices?limit=10"), headers=session)).json()[
                "items"
            ]
        }
        for i in range(4):
            contacts = (
                await http.get(tenant.path(f"/invoices/{ids[f'L-{i}']}/contacts"), headers=session)
            ).json()
            assert [(c["status"], c["letter_id"] is not None) for c in contacts] == [("sent", True)]


async def test_a_live_policy_stored_before_the_step_bound_still_runs(engine_server, admin):
    """The 50-step bound is for what is written now; a live version stored before it was set
    must go on being carried out (and previewed, and simulated against), not fail every
    day's run."""
    import json
    from uuid import UUID

    from backend.tables import PolicyVersion
    from simulator.policy import MAX_STEPS
    from tenants.scope import TenantScope

    async with httpx.AsyncClient(base_url=engine_server.url, timeout=120) as http:
        tenant, session, _ = await _setup(http, admin)
        long = {
            "name": "Long",
            "steps": [
                {"day": 1 + 3 * i, "action": "reminder", "channel": "email"}
                for i in range(MAX_STEPS + 10)
            ],
        }
        too_long = await http.post(tenant.path("/policies"), json={"policy": long}, headers=session)
        assert too_long.status_code == 422 and "steps" in too_long.text  # refused when written
        scope = await TenantScope.open(UUID(tenant.id), _system())
        await scope.update(PolicyVersion, {PolicyVersion.document: json.dumps(long)}).where(
            PolicyVersion.status == "live"
        )
        today = date.today().isoformat()
        preview = await http.get(tenant.path(f"/dunning/preview?date={today}"), headers=session)
        assert preview.status_code == 200, preview.text
        run = await http.post(tenant.path("/dunning/run"), json={"date": today}, headers=session)
        assert run.status_code == 200, run.text
        assert run.json()["recorded"] >= 1  # the late invoice's due steps went out
        listed = await http.get(tenant.path("/policies"), headers=session)
        assert listed.status_code == 200, listed.text
