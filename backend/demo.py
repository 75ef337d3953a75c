"""Demo data: an agency admin and three client tenants with a few thousand invoices each.

Seeding happens once per database; the logins and keys it made are kept in
`var/demo-credentials.json` so every later `make demo` prints the same ones. The book is
drawn relative to the day it is seeded, and a later `make demo` moves every date of it
forward to today, so the demo always shows this week's book (open, overdue and paid
invoices in the proportions of a real one), never a book frozen on the day it was made.
"""

from __future__ import annotations

import json
import os
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from rich.console import Console

from backend import ingest
from backend.settings import Settings
from backend.tables import (
    CollectionCase,
    DunningRun,
    DunningStep,
    Invoice,
    InvoiceEvent,
    Payment,
)
from tenants import onboarding
from tenants.access import Principal
from tenants.credentials import generate_password
from tenants.scope import TenantScope
from tenants.transactions import write_transaction

DEMO_ADMIN = "admin@kravlab.demo"
TENANTS: list[dict[str, Any]] = [
    {"name": "Nordisk Fritid AB", "slug": "nordisk-fritid", "b2c_share": 0.9, "invoices": 3000},
    {
        "name": "Byggvaruhuset Norr AB",
        "slug": "byggvaruhuset-norr",
        "b2c_share": 0.2,
        "invoices": 2000,
    },
    {"name": "Solgläntan El AB", "slug": "solglantan-el", "b2c_share": 0.55, "invoices": 2500},
]


def _credentials_path(settings: Settings) -> str:
    return str(settings.var_dir / "demo-credentials.json")


async def seed(settings: Settings, today: date | None = None) -> dict[str, Any]:
    path = Path(_credentials_path(settings))
    today = today or date.today()
    if path.exists() and await onboarding.agency_user_exists(DEMO_ADMIN):  # noqa: ASYNC240
        kept = json.loads(path.read_text())  # noqa: ASYNC240 (a small local file, once)
        if await _move_to(today, kept):
            _write(path, kept)
        return kept
    password = generate_password()
    admin_id = await onboarding.create_agency_user(DEMO_ADMIN, password, "agency_admin")
    admin = Principal.user(admin_id, None, "agency_admin", DEMO_ADMIN)
    credentials: dict[str, Any] = {
        "admin": {"id": str(admin_id), "email": DEMO_ADMIN, "password": password},
        "tenants": [],
        "book_as_of": today.isoformat(),
    }
    for number, spec in enumerate(TENANTS):
        created = await onboarding.onboard(
            name=spec["name"],
            slug=spec["slug"],
            country="SE",
            currency="SEK",
            admin_email=f"admin@{spec['slug']}.demo",
            actor=admin,
        )
        scope = await TenantScope.open(created["id"], admin)
        await _fill_book(scope, spec, random.Random(number), today)
        await _go_live(scope, settings, today)
        credentials["tenants"].append(
            {
                "id": str(created["id"]),
                "slug": spec["slug"],
                "name": spec["name"],
                "admin": {
                    "email": created["admin"]["email"],
                    "password": created["admin"]["password"],
                },
                "api_key": created["api_key"],
            }
        )
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    _write(path, credentials)
    return credentials


# The demo's credit policies: letters and calls, so the demo needs no mail server to show
# what the engine does (formats §2).
DEMO_POLICIES: list[dict[str, Any]] = [
    {
        "name": "Konsument",
        "segment": {"debtor_type": "b2c"},
        "steps": [
            {"day": 5, "action": "reminder", "channel": "letter"},
            {"day": 20, "action": "reminder", "channel": "letter", "fee": 6_000},
            {
                "day": 35,
                "action": "collection_notice",
                "channel": "letter",
                "fee": 18_000,
                "deadline_days": 10,
            },
        ],
        "escalate_after_days": 60,
        "payment_plans": {
            "allowed": True,
            "max_installments": 3,
            "min_amount": 50_000,
            "setup_fee": 17_000,
        },
    },
    {
        "name": "Företag",
        "segment": {"debtor_type": "b2b"},
        "steps": [
            {"day": 7, "action": "reminder", "channel": "phone"},
            {"day": 21, "action": "reminder", "channel": "letter"},
        ],
        "compensation": True,
        "escalate_after_days": 75,
    },
]


async def _simulated(scope: TenantScope, settings: Settings, candidates: dict[str, Any]) -> None:
    from backend import simulations

    row, _ = await simulations.create(scope, settings, {"candidates": candidates}, enqueue=False)
    await simulations.run_now(scope, settings, row["id"])


async def _go_live(scope: TenantScope, settings: Settings, today: date) -> None:
    """A profile, the demo policies live through the simulation gate, today's dunning run,
    and a finished what-if of a firmer draft, so a new user sees contacts, letters, call
    tasks, cases, a fitted model and a forecast in the first minute."""
    from backend import dunning, policies, simulations
    from backend.tables import TenantProfile
    from tenants.transactions import write_transaction

    async with write_transaction():
        await scope.insert(
            TenantProfile,
            {
                "id": uuid4(),
                "org_number": "556000-0000",
                "bankgiro": "5555-1234",
                "dispute_email": "kundtjanst@example.se",
                "language": "sv",
                "updated_at": datetime.now(UTC),
            },
        )
    simulations.install_gate()
    made = []
    for document in DEMO_POLICIES:
        made.append(await policies.create(scope, document))
        version = {"policy_id": str(made[-1]["id"]), "version": 1}
        await _simulated(scope, settings, {document["name"]: version})
        await policies.activate(scope, made[-1]["id"], 1)
    await dunning.run(scope, today, {}, letters_now=True)
    firmer = dict(DEMO_POLICIES[0])
    firmer["steps"] = [{**firmer["steps"][0], "day": 2, "channel": "sms"}, *firmer["steps"][1:]]
    draft = await policies.add_version(scope, made[0]["id"], firmer)
    await _simulated(
        scope,
        settings,
        {"SMS dag 2": {"policy_id": str(made[0]["id"]), "version": draft["number"]}},
    )


def _write(path: Path, credentials: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(credentials, handle, indent=2)


# Every calendar date of the demo book, by table: moved together, they keep every invoice's
# age, lateness and payment as they were, only nearer to today.
DATES: list[tuple[Any, tuple[str, ...]]] = [
    (Invoice, ("issue_date", "due_date", "settled_date", "paused_until", "interest_as_of")),
    (DunningStep, ("run_date",)),
    (DunningRun, ("run_date",)),
    (CollectionCase, ("opened_on",)),
    (Payment, ("paid_date",)),
    (InvoiceEvent, ("until",)),
]


async def _move_to(today: date, credentials: dict[str, Any]) -> bool:
    """Move the demo book's dates forward to `today`; False when already there."""
    as_of = date.fromisoformat(credentials.get("book_as_of", today.isoformat()))
    days = (today - as_of).days
    if days <= 0 or "id" not in credentials["admin"]:
        return False
    shift = timedelta(days=days)
    admin = Principal.user(UUID(credentials["admin"]["id"]), None, "agency_admin", DEMO_ADMIN)
    for tenant in credentials["tenants"]:
        scope = await TenantScope.open(UUID(tenant["id"]), admin)
        async with write_transaction():
            for table, columns in DATES:
                rows = await scope.select(table, table._meta.primary_key, *columns)
                moved = [(*(_later(row[c], shift) for c in columns), row["id"]) for row in rows]
                await scope.update_many(table, "id", columns, moved)
            await scope.audit("demo.moved", "tenant", tenant["id"], days=days)
    credentials["book_as_of"] = today.isoformat()
    return True


def _later(value: date | str | None, shift: timedelta) -> date | None:
    if value is None:
        return None
    return (date.fromisoformat(value) if isinstance(value, str) else value) + shift


async def _fill_book(
    scope: TenantScope, spec: dict[str, Any], rng: random.Random, today: date
) -> None:
    debtors = [
        ingest.DebtorIn(
            external_id=f"C-{i:05d}",
            name=f"Kund {i}",
            type="b2c" if rng.random() < spec["b2c_share"] else "b2b",
            email=f"kund{i}@example.se",
            phone=f"+46701{i:06d}",
            address=f"Storgatan {i % 90 + 1}\n{11120 + i % 800} Stockholm",
        )
        for i in range(spec["invoices"] // 4)
    ]
    # Some debtors pay on time, some late, a few never: the mix the simulator has to learn.
    lateness = {d.external_id: rng.choice([0, 0, 0, 3, 10, 25, 60, None]) for d in debtors}
    invoices, payments = [], []
    for i in range(spec["invoices"]):
        debtor = rng.choice(debtors)
        issue = today - timedelta(days=rng.randint(5, 400))
        due = issue + timedelta(days=30 if debtor.type == "b2b" else 20)
        amount = int(rng.lognormvariate(7.5 if debtor.type == "b2c" else 9.5, 0.9)) * 100 + 100
        external_id = f"F-{i + 1:06d}"
        invoices.append(
            ingest.InvoiceIn(
                external_id=external_id,
                debtor=debtor,
                issue_date=issue,
                due_date=due,
                amount=amount,
                currency="SEK",
                reference=f"{1000000 + i}",
                e_invoice=rng.random() < 0.4,
                fee_agreed=rng.random() < 0.7,
            )
        )
        late = lateness[debtor.external_id]
        if late is not None:
            paid = due + timedelta(days=max(-10, int(rng.gauss(late, 4))))
            if paid <= today:
                payments.append(
                    ingest.PaymentIn(
                        external_id=f"P-{i + 1:06d}",
                        amount=amount,
                        currency="SEK",
                        paid_date=paid,
                        invoice_external_id=external_id if rng.random() < 0.97 else None,
                        reference=None if rng.random() < 0.5 else f"{1000000 + i}",
                    )
                )
    for start in range(0, len(invoices), ingest.MAX_BATCH_ROWS):
        await ingest.ingest_invoices(
            scope, ingest.InvoiceBatch(invoices[start : start + ingest.MAX_BATCH_ROWS])
        )
    for start in range(0, len(payments), ingest.MAX_BATCH_ROWS):
        await ingest.ingest_payments(
            scope, ingest.PaymentBatch(payments[start : start + ingest.MAX_BATCH_ROWS])
        )


def print_credentials(console: Console, credentials: dict[str, Any], host: str, port: int) -> None:
    """Plain lines, never wrapped or cut: people copy these secrets out of the terminal."""
    base = f"http://{host}:{port}"
    admin = credentials["admin"]
    lines = [
        "",
        "kravlab demo",
        f"  console        {base}/console  (log in with any login below; {base}/ opens it)",
        f"  agency admin   {admin['email']}   password {admin['password']}",
    ]
    for tenant in credentials["tenants"]:
        lines += [
            f"  tenant {tenant['name']} (id {tenant['id']})",
            f"    tenant admin {tenant['admin']['email']}   password {tenant['admin']['password']}",
            f"    API key      {tenant['api_key']}",
        ]
    first = credentials["tenants"][0]
    lines += [
        f"  API docs       {base}/schema  (OpenAPI: {base}/schema/openapi.json)",
        f"  try: curl -H 'Authorization: Bearer {first['api_key']}' "
        f"'{base}/api/v1/tenants/{first['id']}/invoices?status=overdue&limit=5'",
        "",
    ]
    console.print("\n".join(lines), soft_wrap=True, highlight=False, markup=False)
