"""The daily dunning run on PostgreSQL: plan, record and delivery rates for one large tenant.

    .venv/bin/python bench/dunning.py [--invoices 1000000] [--letters 2000]

Builds a fresh database (`kravlab_bench`, dropped and recreated), one tenant with a profile,
three live segment policies (b2c small amounts, b2c large, b2b with compensation) and N
invoices through the bulk ingest path, due dates spread over the policies' whole span, about
one in ten paid. The history is seeded as the engine's own step rows (every step whose day
lies before today's taken and sent, without fees), so today's run is a steady-state day: the
invoices whose step day is today, plus those reaching escalation.

Then times, each in the same process, with wall and CPU time (the CPU time is this process's
own; PostgreSQL's backend works on top of it):
- `plan`: what the preview computes (median of 3; reads only);
- `accrue_interest`: the interest part of the run, its own transaction after `record`, on
  each date after the previous date's figures (idempotent per date);
- `record`: the run's transaction (plan, steps, fees, cases), once per fresh date
  (today, tomorrow, the day after: each a new daily run);
- delivery of email and SMS to in-process sinks (a sample of each day's contacts, in the
  run's claimed batches), extrapolated to all of the day's;
- the letters job (`deliver_letters`) on a bounded sample of letters (rendered to PDF and
  stored), extrapolated to all of the day's: reported apart, as it runs after the run;
- baselines: `SELECT count(*)` of the open invoices and a COPY of their ids.

Before each date's run an untimed `VACUUM ANALYZE` of invoices and steps stands for the
night between two daily runs (autovacuum clears the day's dead row versions).
The whole run of a day is record + interest + email/SMS delivery, as `dunning.run` does it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import random
import resource
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PG_ADMIN = os.environ.get("KRAVLAB_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
TODAY = date.today()

# Amounts in öre. Step days from the due date; escalation hands the invoice to a case.
POLICIES: list[dict[str, Any]] = [
    {
        "name": "b2c small",
        "segment": {"debtor_type": "b2c", "max_amount": 99_999},
        "steps": [
            {"day": -3, "action": "reminder", "channel": "email"},
            {"day": 3, "action": "reminder", "channel": "sms"},
            {"day": 12, "action": "reminder", "channel": "email", "fee": 6000},
            {
                "day": 25,
                "action": "collection_notice",
                "channel": "letter",
                "fee": 18000,
                "deadline_days": 10,
            },
        ],
        "escalate_after_days": 45,
    },
    {
        "name": "b2c large",
        "segment": {"debtor_type": "b2c", "min_amount": 100_000},
        "steps": [
            {"day": 1, "action": "reminder", "channel": "email"},
            {"day": 8, "action": "reminder", "channel": "letter", "fee": 6000},
            {"day": 15, "action": "reminder", "channel": "sms"},
            {
                "day": 22,
                "action": "collection_notice",
                "channel": "letter",
                "fee": 18000,
                "deadline_days": 10,
            },
        ],
        "escalate_after_days": 40,
    },
    {
        "name": "b2b",
        "segment": {"debtor_type": "b2b"},
        "compensation": True,
        "steps": [
            {"day": 2, "action": "reminder", "channel": "email"},
            {"day": 14, "action": "reminder", "channel": "email"},
            {"day": 30, "action": "collection_notice", "channel": "letter", "deadline_days": 14},
        ],
        "escalate_after_days": 60,
    },
]
DAYS_PAST = (-10, 60)  # today's distance from the due date, spread evenly


def rss_mb() -> float:
    """Peak resident memory: VmHWM (resettable through clear_refs), else getrusage's."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Timing:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def median_cpu(self) -> float:
        return statistics.median(self.cpu)

    def runs(self) -> str:
        return " / ".join(f"{t:.2f}" for t in self.wall)


async def timed(timing: Timing, work: Callable[[], Awaitable[Any]]) -> Any:
    started, started_cpu = time.perf_counter(), cpu()
    result = await work()
    timing.wall.append(time.perf_counter() - started)
    timing.cpu.append(cpu() - started_cpu)
    return result


class Sink:
    """A channel that keeps what it is given: delivery without a network."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.messages: list[Any] = []

    async def send(self, message: Any, *, overrides: Any = None, reference: str | None = None):
        from backend.channels import SendResult

        self.messages.append(message)
        return SendResult(status="sent", channel=self.channel, provider_id=reference)


def instrument(module: Any) -> dict[str, Timing]:
    """Wrap the delivery's parts (looked up as module globals at each call) to time them."""
    parts: dict[str, Timing] = {}
    for name in ("_claim", "_invoices", "_message", "render_letter", "_settle_many"):
        original = getattr(module, name)
        timing = parts.setdefault(name, Timing())

        if asyncio.iscoroutinefunction(original):

            async def wrapped(*a: Any, _f: Any = original, _t: Timing = timing, **k: Any) -> Any:
                return await timed(_t, lambda: _f(*a, **k))

        else:

            def wrapped(*a: Any, _f: Any = original, _t: Timing = timing, **k: Any) -> Any:
                started, started_cpu = time.perf_counter(), cpu()
                try:
                    return _f(*a, **k)
                finally:
                    _t.wall.append(time.perf_counter() - started)
                    _t.cpu.append(cpu() - started_cpu)

        setattr(module, name, wrapped)
    return parts


def shares(parts: dict[str, Timing], total: float) -> str:
    out = []
    for name, t in parts.items():
        if t.wall:
            out.append(
                f"{name} {sum(t.wall) / len(t.wall) * 1000:.1f} ms x{len(t.wall)} "
                f"({sum(t.wall) / total:.0%})"
            )
        t.wall.clear()
        t.cpu.clear()
    return ", ".join(out)


async def fresh_database(name: str) -> str:
    import asyncpg

    connection = await asyncpg.connect(PG_ADMIN)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def invoice_rows(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        debtor = rng.randint(0, max(1, n // 3))
        b2b = debtor % 5 == 0
        due = TODAY - timedelta(days=rng.randint(*DAYS_PAST))
        amount = rng.randint(20_000, 2_000_000) if b2b else int(rng.lognormvariate(11.2, 0.9))
        rows.append(
            {
                "external_id": f"INV-{i:07d}",
                "debtor": {
                    "external_id": f"C-{debtor:07d}",
                    "name": f"Kund {debtor}" + (" AB" if b2b else ""),
                    "type": "b2b" if b2b else "b2c",
                    "email": f"c{debtor}@example.se",
                    "phone": f"+4670{debtor:07d}",
                    "address": f"Storgatan {debtor % 90 + 1}\n111 22 Stockholm",
                },
                "issue_date": (due - timedelta(days=30)).isoformat(),
                "due_date": due.isoformat(),
                "amount": max(100, min(amount, 50_000_000)),
                "currency": "SEK",
                "reference": f"{100000000 + i}",
                "fee_agreed": rng.random() < 0.7,
            }
        )
    return rows


async def build(n: int, scope: Any) -> dict[str, Any]:
    """The tenant's book: profile, policies, invoices, payments, the steps already taken."""
    import msgspec

    from backend import cases, policies
    from backend.dunning import STEP_COLUMNS
    from backend.ingest import InvoiceBatch, PaymentBatch, ingest_invoices, ingest_payments
    from backend.tables import DunningStep, Invoice, TenantProfile
    from tenants.transactions import write_transaction

    async with write_transaction():
        await scope.insert(
            TenantProfile,
            {
                "id": uuid4(),
                "org_number": "556677-8899",
                "bankgiro": "123-4567",
                "dispute_email": "tvist@kund.test",
                "language": "sv",
                "updated_at": datetime.now(UTC),
            },
        )
    for document in POLICIES:
        made = await policies.create(scope, document)
        await policies.activate(scope, made["id"], 1)

    rows = invoice_rows(n)
    started = time.perf_counter()
    for i in range(0, n, 10_000):
        batch = msgspec.convert({"invoices": rows[i : i + 10_000]}, InvoiceBatch)
        await ingest_invoices(scope, batch)
    ingest_s = time.perf_counter() - started
    rng = random.Random(11)
    paid = [r for r in rows if rng.random() < 0.1]
    for i in range(0, len(paid), 10_000):
        payments = [
            {
                "external_id": f"P-{r['external_id']}",
                "amount": r["amount"],
                "currency": "SEK",
                "paid_date": min(TODAY, date.fromisoformat(r["due_date"])).isoformat(),
                "invoice_external_id": r["external_id"],
            }
            for r in paid[i : i + 10_000]
        ]
        await ingest_payments(scope, msgspec.convert({"payments": payments}, PaymentBatch))

    # History: every step whose day came before today, as a run on that day took it.
    live = await policies.live_set(scope)
    book = await scope.select(
        Invoice,
        Invoice.id,
        Invoice.due_date,
        Invoice.amount,
        Invoice.debtor.type.as_alias("debtor_type"),
    ).where(Invoice.settled_date.is_null())
    now = datetime.now(UTC)
    history = []
    escalated: list[tuple[UUID, int]] = []
    for row in book:
        chosen = policies.governing(live, row["debtor_type"], row["amount"])
        if chosen is None:
            continue
        policy_id, version, policy = chosen
        days_past = (TODAY - row["due_date"]).days
        if policy.escalate_after_days is not None and days_past > policy.escalate_after_days:
            escalated.append((row["id"], row["amount"]))  # a case since an earlier run
        for ordinal, step in enumerate(policy.steps):
            if step.day >= days_past:
                break
            history.append(
                (
                    uuid4(),
                    scope.tenant_id,
                    row["id"],
                    ordinal,
                    row["due_date"] + timedelta(days=step.day),
                    policy_id,
                    version,
                    ordinal,
                    step.day,
                    step.action,
                    step.channel,
                    0,
                    None,
                    "sent",
                    1,
                    now,
                )
            )
    for i in range(0, len(history), 50_000):
        async with write_transaction():
            await scope.upsert(
                DunningStep, STEP_COLUMNS, history[i : i + 50_000], ("invoice", "ordinal"), ()
            )
    for i in range(0, len(escalated), 50_000):
        async with write_transaction():
            await cases.open_cases(scope, escalated[i : i + 50_000], TODAY - timedelta(days=1))
    return {
        "ingest_s": ingest_s,
        "paid": len(paid),
        "open": len(book),
        "history": len(history),
        "cases": len(escalated),
    }


async def baselines(dsn: str, tenant: UUID) -> tuple[Timing, Timing, Timing, int]:
    """What PostgreSQL alone needs to find and hand over the open invoices."""
    import asyncpg

    count_t, copy_t, commit_t = Timing(), Timing(), Timing()
    connection = await asyncpg.connect(dsn)
    try:
        where = f"tenant = '{tenant}' AND settled_date IS NULL"
        count = 0
        for _ in range(3):
            count = await timed(
                count_t, lambda: connection.fetchval(f"SELECT count(*) FROM invoices WHERE {where}")
            )
        for _ in range(3):
            await timed(
                copy_t,
                lambda: connection.copy_from_query(
                    f"SELECT id FROM invoices WHERE {where}", output=io.BytesIO()
                ),
            )
        # The floor of any per-contact write: one committed transaction (WAL flush).
        await connection.execute(
            "CREATE TABLE bench_commit (n int); INSERT INTO bench_commit VALUES (0)"
        )
        for _ in range(200):
            await timed(commit_t, lambda: connection.execute("UPDATE bench_commit SET n = n + 1"))
        await connection.execute("DROP TABLE bench_commit")
    finally:
        await connection.close()
    return count_t, copy_t, commit_t, count


async def hold(scope: Any, on: date, channels: tuple[str, ...], keep: int) -> int:
    """Put off all but `keep` of the pending steps of `channels` (so one delivery handles a
    bounded sample); returns how many were pending."""
    from backend.tables import DunningStep

    pending = await scope.select(DunningStep, DunningStep.id).where(
        DunningStep.channel.is_in(list(channels))
        & (DunningStep.status == "pending")
        & (DunningStep.run_date == on)
    )
    held = [r["id"] for r in pending[keep:]]
    later = datetime.now(UTC) + timedelta(days=365)
    for i in range(0, len(held), 20_000):
        await scope.update(DunningStep, {DunningStep.next_attempt_at: later}).where(
            DunningStep.id.is_in(held[i : i + 20_000])
        )
    return len(pending)


async def bench(n: int, letters: int, sample: int, days: int, repeat: int, pool: bool) -> None:
    from backend import dunning
    from backend.migrate import migrate
    from tenants.access import ROLE_GRANTS, Principal
    from tenants.onboarding import onboard
    from tenants.scope import TenantScope
    from tenants.transactions import write_transaction

    await migrate()
    if pool:  # as the server (and its in-process executor) runs: a pool of connections
        from piccolo.engine import engine_finder

        from backend.database import open_pool
        from backend.settings import get_settings

        await open_pool(engine_finder(), get_settings())
    parts = instrument(dunning)
    system = Principal(
        "system", UUID(int=0), None, "agency_admin", grants=ROLE_GRANTS["agency_admin"]
    )
    tenant = await onboard(
        name="Bench AB",
        slug=f"bench-{secrets.token_hex(4)}",
        country="SE",
        currency="SEK",
        admin_email="admin@bench.test",
        actor=system,
    )
    scope = await TenantScope.open(tenant["id"], system)
    started = time.perf_counter()
    built = await build(n, scope)
    print(
        f"built {n:,} invoices in {time.perf_counter() - started:.0f} s "
        f"(ingest {built['ingest_s']:.0f} s = {n / built['ingest_s']:,.0f} /s), "
        f"{built['paid']:,} paid, {built['open']:,} open, {built['history']:,} steps of history, "
        f"{built['cases']:,} in collection"
    )
    build_rss = rss_mb()
    with contextlib.suppress(OSError):  # the peak from here on is the run's alone (Linux)
        Path("/proc/self/clear_refs").write_text("5")
    dsn = os.environ["DATABASE_URL"]
    async with await _connect(dsn) as connection:
        await connection.execute("VACUUM ANALYZE")

    count_t, copy_t, commit_t, open_count = await baselines(dsn, tenant["id"])
    plan_t, interest_t = Timing(), Timing()
    planned = None
    for _ in range(repeat):
        planned = await timed(plan_t, lambda: dunning.plan(scope, TODAY))
    assert planned is not None

    async def interest(on: date) -> None:
        async with write_transaction():
            await dunning.accrue_interest(scope, on)

    # The day before: every figure brought to yesterday, as the last daily run left it.
    await interest(TODAY - timedelta(days=1))

    record_t, deliver_t, letter_t = Timing(), Timing(), Timing()
    per_day = []
    sinks = {"email": Sink("email"), "sms": Sink("sms")}
    letter_count = letter_sample = 0
    letter_parts = ""
    for offset in range(days):
        on = TODAY + timedelta(days=offset)
        # The night between two daily runs: autovacuum has cleared the dead row versions of
        # the day before (untimed), so an invoice's new interest row fits its page.
        async with await _connect(dsn) as connection:
            await connection.execute("VACUUM ANALYZE invoices")
            await connection.execute("VACUUM ANALYZE dunning_steps")
        recorded, _ = await timed(record_t, lambda on=on: dunning.record(scope, on))
        await timed(interest_t, lambda on=on: interest(on))
        channels = Counter(s.channel for s in recorded.contacts)
        letters_today = await hold(scope, on, ("letter",), 0)
        electronic = await hold(scope, on, ("email", "sms"), sample)
        shares(parts, 1)
        delivery = await timed(deliver_t, lambda on=on: dunning.deliver(scope, sinks, on))
        sent = sum(delivery.values())
        per_day.append(
            (on, recorded, channels, electronic, sent, shares(parts, deliver_t.wall[-1]))
        )
        if offset == 0:
            await _release(scope, on, "letter", letters)
            rendered = await timed(letter_t, lambda on=on: dunning.deliver_letters(scope, on))
            letter_parts = shares(parts, letter_t.wall[-1])
            letter_count, letter_sample = letters_today, sum(rendered.values())

    per_letter = letter_t.wall[0] / max(1, letter_sample)
    print(
        f"\n{n:,} invoices, {open_count:,} open; today {TODAY}; peak RSS {rss_mb():,.0f} MB "
        f"while timing ({build_rss:,.0f} MB while building); "
        f"{'a connection pool' if pool else 'NO pool (a connection per query)'}"
    )
    print(
        f"baseline  SELECT count(*) open {count_t.median * 1000:.1f} ms, "
        f"COPY open ids {copy_t.median * 1000:.1f} ms (median of 3); "
        f"one committed 1-row UPDATE {commit_t.median * 1000:.2f} ms (median of 200)"
    )
    print(
        f"plan      {plan_t.median:7.2f} s  cpu {plan_t.median_cpu:6.2f} s  "
        f"{open_count / plan_t.median:>9,.0f} invoices/s  runs {plan_t.runs()} s  "
        f"({len(planned.contacts):,} contacts, {len(planned.escalations):,} escalations)"
    )
    print(
        f"interest  {interest_t.median:7.2f} s  cpu {interest_t.median_cpu:6.2f} s  "
        f"runs {interest_t.runs()} s  (accrue_interest: its own transaction after record, "
        "one per day below)"
    )
    days_total = []
    for (
        on,
        recorded,
        channels,
        electronic,
        sent,
        split,
    ), r_wall, r_cpu, i_wall, d_wall, d_cpu in zip(
        per_day,
        record_t.wall,
        record_t.cpu,
        interest_t.wall,
        deliver_t.wall,
        deliver_t.cpu,
        strict=True,
    ):
        per_contact = d_wall / max(1, sent)
        whole = r_wall + i_wall + per_contact * electronic
        days_total.append(whole)
        letters_job = per_letter * channels["letter"]
        print(
            f"{on}  record {r_wall:6.2f} s (cpu {r_cpu:5.2f}) "
            f"{len(recorded.contacts):,} contacts {dict(channels)} + "
            f"{len(recorded.escalations):,} cases = "
            f"{len(recorded.steps) / r_wall:,.0f} steps/s; interest {i_wall:6.2f} s\n"
            f"            deliver {sent:,} of {electronic:,} email+sms {d_wall:6.2f} s "
            f"(cpu {d_cpu:5.2f}) = {sent / d_wall:,.0f} contacts/s, "
            f"{per_contact * 1000:.1f} ms each\n            of which {split}\n"
            f"            whole run EXTRAPOLATED (record + interest + all email/sms): "
            f"{whole:,.1f} s; the letters job after it: {letters_job:,.0f} s"
        )
    print(
        f"letters   {letter_sample:,} of {letter_count:,} rendered and stored in "
        f"{letter_t.wall[0]:.2f} s (cpu {letter_t.cpu[0]:.2f}) = "
        f"{per_letter * 1000:.1f} ms/letter\n            of which {letter_parts}"
    )
    median_day = statistics.median(days_total)
    print(
        f"full daily run, median over {days} dates: {median_day:,.0f} s "
        f"(record {record_t.median:.2f} s and interest {interest_t.median:.2f} s medians, "
        "email/SMS delivery extrapolated from the sample; letters are their own job) "
        f"-> goal < 60 s {'MET' if median_day < 60 else 'NOT MET'}"
    )


async def _connect(dsn: str) -> Any:
    import asyncpg

    class _Connection:
        async def __aenter__(self) -> Any:
            self.c = await asyncpg.connect(dsn)
            return self.c

        async def __aexit__(self, *_: object) -> None:
            await self.c.close()

    return _Connection()


async def _release(scope: Any, on: date, channel: str, keep: int) -> None:
    """Open `keep` of the held steps of `channel` again for one delivery."""
    from backend.tables import DunningStep

    held = await (
        scope.select(DunningStep, DunningStep.id)
        .where(
            (DunningStep.channel == channel)
            & (DunningStep.status == "pending")
            & (DunningStep.run_date == on)
        )
        .limit(keep)
    )
    if held:
        await scope.update(DunningStep, {DunningStep.next_attempt_at: None}).where(
            DunningStep.id.is_in([r["id"] for r in held])
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=1_000_000)
    parser.add_argument("--letters", type=int, default=2_000, help="letters rendered as a sample")
    parser.add_argument("--sample", type=int, default=5_000, help="email+sms delivered a day")
    parser.add_argument("--repeat", type=int, default=3, help="runs of plan")
    parser.add_argument(
        "--no-pool",
        action="store_true",
        help="no connection pool, as `run_dunning` in an RQ worker (a connection per query)",
    )
    parser.add_argument("--database", default="kravlab_bench", help="dropped and recreated")
    parser.add_argument("--days", type=int, default=3, help="daily runs recorded, one per date")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kravlab-bench-dunning-"))
    os.environ.update(
        {
            "DATABASE_URL": asyncio.run(fresh_database(args.database)),
            "KRAVLAB_VAR_DIR": str(workdir),
            "KRAVLAB_ENV": "test",
            "KRAVLAB_SECRET_KEY": secrets.token_urlsafe(48),
            "KRAVLAB_LOG_LEVEL": "warning",
        }
    )
    # Piccolo binds its engine at import from DATABASE_URL: import the backend only now.
    asyncio.run(
        bench(args.invoices, args.letters, args.sample, args.days, args.repeat, not args.no_pool)
    )


if __name__ == "__main__":
    main()
