"""Importing a client's payment history (formats §1) into its book, all or nothing.

An import has two halves. The request (`receive`) streams the multipart upload to
`var/imports/<id>/` (never into memory: a 1 000 000-invoice history is a few hundred MB),
records an `Import` row and queues `jobs.load_import`. The job (`load`) validates every
line first with the simulator's own loader (`simulator.history.load_history`, which names
every problem by file, line and column) plus the rules the book adds (the tenant's
currency, identifier length and characters, dates and amounts the book can hold, one type
per debtor, no invoice already in the book), and only a clean history is written: in one
transaction, in bulk (`TenantScope.upsert`: COPY on PostgreSQL), with the import's own row
set to `done` in that same transaction. A failure anywhere leaves no row of the history
and the import `failed` with its problems.

Imported invoices carry `origin = 'import'`: the dunning engine leaves them alone; an ERP
push of the same `external_id` makes one `live` (`backend.ingest`). An `invoice_id` already
in the book refuses the whole import, naming each such line (a history is loaded once;
see docs/imports.md). Debtors are created by their id (the history holds no names or
contact details, so the name is the id); a debtor already in the book is used as it is.
"""

from __future__ import annotations

import asyncio
import contextvars
import csv
import hashlib
import json
import re
import shutil
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import numpy as np
import structlog
from litestar.exceptions import ClientException
from multipart import MultipartSegment, ParserError, ParserLimitReached, PushMultipartParser

from backend import ingest, settlement
from backend.settings import Settings
from backend.tables import Contact, Debtor, Import, Invoice, Payment
from backend.validation import FieldError, InvalidInput
from simulator.history import (
    ACTIONS,
    CHANNELS,
    NOT_SETTLED,
    History,
    HistoryError,
    Problem,
    day_date,
    day_number,
    load_history,
)
from tenants import audit
from tenants.clock import aware
from tenants.scope import TenantScope
from tenants.transactions import is_sqlite, write_transaction

log = structlog.get_logger("kravlab.imports")

INVOICES, PAYMENTS, ACTIONS_FILE = "invoices.csv", "payments.csv", "actions.csv"
FILES = (INVOICES, PAYMENTS, ACTIONS_FILE)
REQUIRED_FILES = (INVOICES, PAYMENTS)
# An import lists at most this many problems (the API's error lists are capped alike);
# `error_count` has them all.
MAX_LISTED_PROBLEMS = 100
# Rows per bulk statement: bounds the memory of one COPY without costing throughput.
CHUNK_ROWS = 50_000
# An RQ job that vanished this long after its import was queued is not "about to start".
LOST_JOB_GRACE = timedelta(seconds=60)
STATUSES = ("queued", "running", "done", "failed")
# A cell a spreadsheet would run as a formula (CSV injection, OWASP's list), or a control
# character: identifiers are shown in lists and exported again, so neither is taken.
_FORMULA_OR_CONTROL = re.compile(r"^[=+\-@\t\r]|[\x00-\x1f\x7f]")
_PART_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class UnsupportedMediaType(ClientException):
    status_code = 415


class TooLarge(ClientException):
    status_code = 413


class KeyInFlight(ClientException):
    """409: an upload with this Idempotency-Key is still being accepted (the answer comes
    from the idempotency record; declared so the route documents it)."""

    status_code = 409


@dataclass
class Problems:
    """Problems by file, line and column: the first `MAX_LISTED_PROBLEMS` kept, all counted."""

    listed: list[Problem] = field(default_factory=list)
    count: int = 0

    def add(self, file: str, line: int, column: str, message: str) -> None:
        self.count += 1
        if len(self.listed) < MAX_LISTED_PROBLEMS:
            self.listed.append(Problem(file, line, column, message))

    def __bool__(self) -> bool:
        return self.count > 0


class ImportFailed(Exception):
    """The history cannot be loaded: nothing was written."""

    def __init__(self, problems: Problems) -> None:
        super().__init__(f"{problems.count} problem(s)")
        self.problems = problems


# --- receiving the upload ---------------------------------------------------------------


def folder_of(var_dir: Path, import_id: UUID | str) -> Path:
    return var_dir / "imports" / str(import_id)


@dataclass
class Upload:
    """What `receive` stored: the files by name, their sizes, and the request's digest for
    the Idempotency-Key check: the path and each part's name and bytes, in name order (a
    client's retry sends the same files under a new multipart boundary)."""

    folder: Path
    sizes: dict[str, int]
    digest: str


async def receive(
    chunks: AsyncIterator[bytes], boundary: bytes, folder: Path, limit: int, path: str
) -> Upload:
    """Stream a multipart body into `folder`, one file per part, refusing early.

    A part with an unknown name, a second part of one name or a body past `limit` bytes
    stops the upload at once (422, 422, 413); a missing required part is found at the end.
    The folder is removed on any refusal, so a refused upload leaves nothing behind.
    """
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=False)
    digests: dict[str, Any] = {}
    sizes: dict[str, int] = {}
    received = 0
    handle = None
    try:
        with PushMultipartParser(boundary, max_segment_count=len(FILES)) as parser:
            async for chunk in chunks:
                received += len(chunk)
                if received > limit:
                    raise TooLarge(f"the upload exceeds the import size limit of {limit} bytes")
                for event in parser.parse(chunk):
                    if isinstance(event, MultipartSegment):
                        name = event.name or ""
                        if name not in FILES:
                            shown = name if _PART_NAME.match(name) else "(unprintable)"
                            raise InvalidInput(
                                [FieldError(shown, f"unknown part: send only {', '.join(FILES)}")],
                                "invalid upload",
                            )
                        if name in sizes:
                            raise InvalidInput([FieldError(name, "sent twice")], "invalid upload")
                        sizes[name] = 0
                        digests[name] = hashlib.sha256()
                        handle = (folder / name).open("wb")
                    elif event is None:
                        assert handle is not None
                        handle.close()
                        handle = None
                    else:
                        assert handle is not None
                        handle.write(event)
                        name = Path(handle.name).name
                        sizes[name] += len(event)
                        digests[name].update(event)
                if parser.closed:
                    break
    except (InvalidInput, TooLarge):
        _discard(folder, handle)
        raise
    except ParserLimitReached:
        _discard(folder, handle)
        raise InvalidInput(
            [FieldError("$", f"at most {len(FILES)} parts: {', '.join(FILES)}")], "invalid upload"
        ) from None
    except (ParserError, ValueError, UnicodeDecodeError) as exc:
        _discard(folder, handle)
        raise ClientException(f"malformed multipart/form-data: {exc}") from None
    except BaseException:
        _discard(folder, handle)
        raise
    missing = [name for name in REQUIRED_FILES if name not in sizes]
    if missing:
        _discard(folder, None)
        raise InvalidInput(
            [FieldError(name, "required part is missing") for name in missing], "invalid upload"
        )
    digest = hashlib.sha256(b"POST " + path.encode() + b"\n")
    for name in sorted(digests):
        digest.update(f"{name}:{digests[name].hexdigest()}\n".encode())
    return Upload(folder, sizes, digest.hexdigest())


def _discard(folder: Path, handle: Any) -> None:
    if handle is not None:
        handle.close()
    shutil.rmtree(folder, ignore_errors=True)


def discard_files(var_dir: Path, import_id: UUID | str) -> None:
    shutil.rmtree(folder_of(var_dir, import_id), ignore_errors=True)


async def create(scope: TenantScope, import_id: UUID, upload: Upload) -> None:
    """Record the import as queued, with its audit entry, in one transaction."""
    now = datetime.now(UTC)
    async with write_transaction():
        await scope.insert(
            Import,
            {
                "id": import_id,
                "status": "queued",
                "stage": "queued",
                "created_by": scope.principal.actor,
                "created_at": now,
            },
        )
        await scope.audit("imports.create", "import", import_id, files=upload.sizes)


async def forget(scope: TenantScope, import_id: UUID) -> None:
    """Remove an import the queue refused (it was never accepted)."""
    async with write_transaction():
        await scope.delete(Import).where(Import.id == import_id)


# --- validating -------------------------------------------------------------------------


def record_lines(path: Path) -> list[int]:
    """The line number `load_history` gives each record of a file, in order (blank lines
    are skipped and not counted as records; the header is line 1)."""
    lines = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        for line, values in enumerate(reader, start=2):
            if values and values != [""]:
                lines.append(line)
    return lines


class _Lines:
    """Line numbers of records, read from a file only when a problem needs one."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lines: dict[str, list[int]] = {}

    def __call__(self, file: str, index: int) -> int:
        if file not in self._lines:
            self._lines[file] = record_lines(self.folder / file)
        return self._lines[file][index]


def _bad_ids(values: Sequence[str]) -> list[tuple[int, str]]:
    """(index, why) of identifiers the book cannot take."""
    bad = []
    limit = 128  # the book's external_id columns
    for i, value in enumerate(values):
        if len(value) > limit:
            bad.append((i, f"longer than {limit} characters"))
        elif _FORMULA_OR_CONTROL.search(value):
            bad.append((i, "must not start with = + - @ or hold control characters"))
    return bad


def check(history: History, currency: str, lines: Callable[[str, int], int]) -> Problems:
    """The book's rules beyond the history format's, each problem on its line."""
    problems = Problems()
    if history.size == 0:
        problems.add(INVOICES, 1, "", "no invoices: the history is empty")
        return problems
    if history.currency != currency:
        problems.add(
            INVOICES,
            lines(INVOICES, 0),
            "currency",
            f"the tenant's currency is {currency}, the history's {history.currency}",
        )
    invoice_ids = history.invoice_id.tolist()
    for i, why in _bad_ids(invoice_ids):
        problems.add(INVOICES, lines(INVOICES, i), "invoice_id", why)
    _, first_row = np.unique(history.debtor, return_index=True)
    for d, why in _bad_ids(history.debtor_ids.tolist()):
        problems.add(INVOICES, lines(INVOICES, int(first_row[d])), "debtor_id", why)
    # One type per debtor: the first invoice of a debtor says which.
    first_b2c = history.b2c[first_row][history.debtor]
    for i in np.flatnonzero(history.b2c != first_b2c).tolist():
        problems.add(
            INVOICES,
            lines(INVOICES, i),
            "debtor_type",
            f"debtor {history.debtor_ids[history.debtor[i]]!r} is "
            f"{'b2c' if first_b2c[i] else 'b2b'} on line {lines(INVOICES, int(first_row[history.debtor[i]]))}",
        )
    earliest, latest = day_number(ingest.EARLIEST), day_number(ingest.LATEST)
    for file, column, days in (
        (INVOICES, "issue_date", history.issue),
        (INVOICES, "due_date", history.due),
        (PAYMENTS, "paid_date", history.pay_day),
        (ACTIONS_FILE, "date", history.act_day),
    ):
        for i in np.flatnonzero((days < earliest) | (days > latest)).tolist():
            problems.add(
                file,
                lines(file, i),
                column,
                f"date must lie between {ingest.EARLIEST} and {ingest.LATEST}",
            )
    for file, amounts in (
        (INVOICES, history.amount),
        (PAYMENTS, history.pay_amount),
        (ACTIONS_FILE, history.act_fee),
    ):
        column = "fee" if file == ACTIONS_FILE else "amount"
        for i in np.flatnonzero(amounts > ingest.MAX_AMOUNT).tolist():
            problems.add(file, lines(file, i), column, f"more than {ingest.MAX_AMOUNT} minor units")
    # Float sums are exact enough to compare with a limit 9 times below 2^63.
    paid = np.bincount(
        history.pay_invoice, weights=history.pay_amount.astype(float), minlength=history.size
    )
    for i in np.flatnonzero(paid > settlement.MAX_PAID).tolist():
        problems.add(
            INVOICES,
            lines(INVOICES, i),
            "invoice_id",
            f"its payments add up to more than {settlement.MAX_PAID} minor units",
        )
    return problems


def validate(folder: Path, currency: str) -> History:
    """The history in `folder`, or `ImportFailed` with every problem (CPU-bound: runs in a
    thread, off the server's loop)."""
    try:
        history = load_history(folder)
    except HistoryError as exc:
        problems = Problems(list(exc.problems[:MAX_LISTED_PROBLEMS]), len(exc.problems) + exc.more)
        raise ImportFailed(problems) from None
    problems = check(history, currency, _Lines(folder))
    if problems:
        raise ImportFailed(problems)
    return history


# --- writing ----------------------------------------------------------------------------

INVOICE_COLUMNS = (*ingest.INVOICE_COLUMNS, "settled_date")
PAYMENT_COLUMNS = ingest.PAYMENT_COLUMNS
CONTACT_COLUMNS = ("id", "tenant", "invoice", "date", "action", "channel", "fee", "import_id")


@dataclass(frozen=True)
class Loaded:
    invoices: int
    payments: int
    contacts: int
    debtors: int


async def _refuse_known_invoices(
    scope: TenantScope, invoice_ids: list[str], lines: Callable[[str, int], int]
) -> None:
    known = {
        row["external_id"]
        for row in await scope.fetch_where_in(Invoice, ("external_id",), "external_id", invoice_ids)
    }
    if not known:
        return
    problems = Problems()
    for i, external_id in enumerate(invoice_ids):
        if external_id in known:
            problems.add(
                INVOICES,
                lines(INVOICES, i),
                "invoice_id",
                f"{external_id!r} is already in the book",
            )
    raise ImportFailed(problems)


async def write(
    scope: TenantScope,
    import_id: UUID,
    history: History,
    lines: Callable[[str, int], int],
    progress: Callable[[float], Any] | None = None,
) -> Loaded:
    """Write a validated history as this tenant's historical rows. Call inside
    `write_transaction()`; raises `ImportFailed` (writing nothing) when an invoice is
    already in the book."""
    await scope.lock("ingest")  # ERP batches and imports of one tenant take turns
    tid = scope.tenant_id
    now = datetime.now(UTC)
    invoice_ids: list[str] = history.invoice_id.tolist()
    book_is_empty = await scope.count(Invoice) == 0
    if not book_is_empty:
        await _refuse_known_invoices(scope, invoice_ids, lines)

    debtor_keys: list[str] = history.debtor_ids.tolist()
    _, first_row = np.unique(history.debtor, return_index=True)
    debtor_b2c = history.b2c[first_row].tolist()
    known_debtors = (
        {}
        if book_is_empty
        else {
            row["external_id"]: row["id"]
            for row in await scope.fetch_where_in(
                Debtor, ("external_id", "id"), "external_id", debtor_keys
            )
        }
    )
    debtor_uuid = [known_debtors.get(key) or ingest.new_id() for key in debtor_keys]
    debtor_rows = [
        (
            debtor_uuid[d],
            tid,
            key,
            key,
            "b2c" if debtor_b2c[d] else "b2b",
            None,
            None,
            None,
            None,
            ingest.content_digest(key, "b2c" if debtor_b2c[d] else "b2b", None, None, None, None),
            now,
            now,
        )
        for d, key in enumerate(debtor_keys)
        if key not in known_debtors
    ]
    for start in range(0, len(debtor_rows), CHUNK_ROWS):
        await scope.upsert(
            Debtor,
            ingest.DEBTOR_COLUMNS,
            debtor_rows[start : start + CHUNK_ROWS],
            ("tenant", "external_id"),
            (),
        )

    days: dict[int, date] = {}

    def day(number: int) -> date:
        found = days.get(number)
        if found is None:
            found = days[number] = day_date(number)
        return found

    n = history.size
    invoice_uuid = [ingest.new_id() for _ in range(n)]
    paid = np.zeros(n, dtype=np.int64)
    np.add.at(paid, history.pay_invoice, history.pay_amount)
    debtor_of = history.debtor.tolist()
    issue, due, amount = history.issue.tolist(), history.due.tolist(), history.amount.tolist()
    e_invoice, fee_agreed = history.e_invoice.tolist(), history.fee_agreed.tolist()
    disputed, settled, paid_list = (
        history.disputed.tolist(),
        history.settled.tolist(),
        paid.tolist(),
    )
    currency = history.currency
    total = n + len(history.pay_invoice) + len(history.act_invoice)
    done = 0

    async def advance(rows: int) -> None:
        nonlocal done
        done += rows
        if progress is not None:
            await progress(done / max(total, 1))

    rows: list[tuple[Any, ...]]
    for start in range(0, n, CHUNK_ROWS):
        rows = []
        for i in range(start, min(start + CHUNK_ROWS, n)):
            external_id = invoice_ids[i]
            debtor_key = debtor_keys[debtor_of[i]]
            issue_day, due_day = day(issue[i]), day(due[i])
            rows.append(
                (
                    invoice_uuid[i],
                    tid,
                    debtor_uuid[debtor_of[i]],
                    external_id,
                    issue_day,
                    due_day,
                    amount[i],
                    currency,
                    None,
                    e_invoice[i],
                    fee_agreed[i],
                    None,
                    "disputed" if disputed[i] else "active",
                    paid_list[i],
                    ingest.content_digest(
                        debtor_key,
                        issue_day,
                        due_day,
                        amount[i],
                        currency,
                        None,
                        e_invoice[i],
                        fee_agreed[i],
                        None,
                    ),
                    now,
                    now,
                    "import",
                    None if settled[i] == NOT_SETTLED else day(settled[i]),
                )
            )
        await scope.upsert(Invoice, INVOICE_COLUMNS, rows, ("tenant", "external_id"), ())
        await advance(len(rows))

    pay_invoice, pay_day = history.pay_invoice.tolist(), history.pay_day.tolist()
    pay_amount = history.pay_amount.tolist()
    prefix = f"import:{import_id}:"
    for start in range(0, len(pay_invoice), CHUNK_ROWS):
        rows = [
            (
                ingest.new_id(),
                tid,
                invoice_uuid[pay_invoice[k]],
                f"{prefix}{k + 1}",
                pay_amount[k],
                currency,
                day(pay_day[k]),
                invoice_ids[pay_invoice[k]],
                None,
                "invoice_id",
                now,
                now,
            )
            for k in range(start, min(start + CHUNK_ROWS, len(pay_invoice)))
        ]
        await scope.upsert(Payment, PAYMENT_COLUMNS, rows, ("tenant", "external_id"), ())
        await advance(len(rows))

    act_invoice, act_day = history.act_invoice.tolist(), history.act_day.tolist()
    act_action, act_channel = history.act_action.tolist(), history.act_channel.tolist()
    act_fee = history.act_fee.tolist()
    import_text = str(import_id)
    for start in range(0, len(act_invoice), CHUNK_ROWS):
        rows = [
            (
                ingest.new_id(),
                tid,
                invoice_uuid[act_invoice[k]],
                day(act_day[k]),
                ACTIONS[act_action[k]],
                CHANNELS[act_channel[k]] if act_channel[k] >= 0 else None,
                act_fee[k],
                import_text,
            )
            for k in range(start, min(start + CHUNK_ROWS, len(act_invoice)))
        ]
        await scope.upsert(Contact, CONTACT_COLUMNS, rows, ("id",), ())
        await advance(len(rows))
    return Loaded(n, len(pay_invoice), len(act_invoice), len(debtor_rows))


# --- the job ----------------------------------------------------------------------------


def _problem_json(problems: Problems) -> str:
    return json.dumps(
        [
            {"file": p.file, "line": p.line, "column": p.column, "message": p.message}
            for p in problems.listed
        ],
        ensure_ascii=False,
    )


async def _set(scope: TenantScope, import_id: UUID, **values: Any) -> None:
    async with write_transaction():
        await scope.update(Import, {getattr(Import, k): v for k, v in values.items()}).where(
            Import.id == import_id
        )


async def _fail(
    scope: TenantScope, import_id: UUID, row: dict[str, Any], problems: Problems
) -> None:
    async with write_transaction():
        await scope.update(
            Import,
            {
                Import.status: "failed",
                Import.stage: "failed",
                Import.errors: _problem_json(problems),
                Import.error_count: problems.count,
                Import.finished_at: datetime.now(UTC),
            },
        ).where(Import.id == import_id)
        await audit.record(
            row["created_by"],
            "imports.failed",
            "import",
            import_id,
            scope.tenant_id,
            problems=problems.count,
        )


def _internal(message: str) -> Problems:
    problems = Problems()
    problems.add("", 0, "", message)
    return problems


# Per mille of an import's progress when validation is over; writing takes the rest.
VALIDATED = 400


def _progress_outside(scope: TenantScope, import_id: UUID) -> Callable[[float], Any] | None:
    """Progress of the writing stage, shown while its transaction is still open.

    PostgreSQL: each update runs in a fresh context, outside the load's transaction, on a
    connection of its own, so a reader sees it at once (the load's transaction touches the
    import's row only at its end). SQLite: the load holds the one write lock, so the stage
    shows 'writing' until it commits.
    """
    if is_sqlite():
        return None
    last = [VALIDATED]

    async def report(share: float) -> None:
        value = VALIDATED + int((1000 - VALIDATED) * share * 0.99)
        if value - last[0] < 20:
            return
        last[0] = value
        task = asyncio.get_running_loop().create_task(
            _set(scope, import_id, progress=value), context=contextvars.Context()
        )
        await task

    return report


async def load(scope: TenantScope, import_id: UUID, var_dir: Path) -> str:
    """Load one queued import; returns its final status.

    Idempotent: an import already done or failed is left as it is; one found `running`
    is a retry after its worker died mid-load, whose transaction died with it, so it
    starts again from the files. The files are removed once the import is finished.
    """
    row = await scope.select(Import).where(Import.id == import_id).first()
    if row is None:
        return "missing"
    if row["status"] in ("done", "failed"):
        return str(row["status"])
    folder = folder_of(var_dir, import_id)
    await _set(
        scope,
        import_id,
        status="running",
        stage="validating",
        progress=0,
        started_at=datetime.now(UTC),
    )
    try:
        if not (folder / INVOICES).is_file():
            raise ImportFailed(_internal("the uploaded files are gone: upload the history again"))
        history = await asyncio.to_thread(validate, folder, scope.currency)
        await _set(scope, import_id, stage="writing", progress=VALIDATED)
        lines = _Lines(folder)
        async with write_transaction():
            loaded = await write(
                scope, import_id, history, lines, _progress_outside(scope, import_id)
            )
            await scope.update(
                Import,
                {
                    Import.status: "done",
                    Import.stage: "done",
                    Import.progress: 1000,
                    Import.invoices: loaded.invoices,
                    Import.payments: loaded.payments,
                    Import.contacts: loaded.contacts,
                    Import.finished_at: datetime.now(UTC),
                },
            ).where(Import.id == import_id)
            await audit.record(
                row["created_by"],
                "imports.done",
                "import",
                import_id,
                scope.tenant_id,
                invoices=loaded.invoices,
                payments=loaded.payments,
                contacts=loaded.contacts,
                debtors=loaded.debtors,
            )
        status = "done"
    except ImportFailed as exc:
        await _fail(scope, import_id, row, exc.problems)
        status = "failed"
    except asyncio.CancelledError:
        # The server is stopping (an in-process load): the transaction rolled back.
        await _fail(
            scope,
            import_id,
            row,
            _internal("the server stopped while loading: nothing was loaded, import again"),
        )
        raise
    except Exception:
        # Nothing of the history was written (the transaction rolled back); the import
        # says so rather than staying `running`, and the traceback goes to the log.
        log.exception("import failed", import_id=str(import_id))
        await _fail(
            scope, import_id, row, _internal("internal error while loading: nothing was loaded")
        )
        status = "failed"
    shutil.rmtree(folder, ignore_errors=True)
    log.info("import finished", import_id=str(import_id), status=status)
    return status


async def load_directory(
    scope: TenantScope, folder: Path, progress: Callable[[str, float], Any] | None = None
) -> tuple[UUID, Loaded]:
    """`kravlab import`: the same validation and writing, from a directory, with progress.

    Recorded as an import like one over HTTP (done, with its audit entry); a history that
    fails is recorded as nothing and raises `ImportFailed`.
    """
    import_id = uuid4()

    async def tell(stage: str, share: float) -> None:
        if progress is not None:
            progress(stage, share)

    await tell("validating", 0.0)
    history = await asyncio.to_thread(validate, folder, scope.currency)
    await tell("writing", 0.0)
    lines = _Lines(folder)
    now = datetime.now(UTC)

    async def step(share: float) -> None:
        await tell("writing", share)

    async with write_transaction():
        loaded = await write(scope, import_id, history, lines, step)
        await scope.insert(
            Import,
            {
                "id": import_id,
                "status": "done",
                "stage": "done",
                "progress": 1000,
                "invoices": loaded.invoices,
                "payments": loaded.payments,
                "contacts": loaded.contacts,
                "created_by": scope.principal.actor,
                "created_at": now,
                "started_at": now,
                "finished_at": datetime.now(UTC),
            },
        )
        await scope.audit(
            "imports.done",
            "import",
            import_id,
            source=str(folder),
            invoices=loaded.invoices,
            payments=loaded.payments,
            contacts=loaded.contacts,
            debtors=loaded.debtors,
        )
    return import_id, loaded


# --- reading ----------------------------------------------------------------------------

COLUMNS = (
    "id",
    "status",
    "stage",
    "progress",
    "invoices",
    "payments",
    "contacts",
    "errors",
    "error_count",
    "created_by",
    "created_at",
    "started_at",
    "finished_at",
)


def out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **{k: row[k] for k in COLUMNS if k not in ("errors", "progress")},
        "progress": row["progress"] / 1000,
        "errors": json.loads(row["errors"] or "[]"),
    }


Lost = Callable[[dict[str, Any]], str | None]


def lost_check(settings: Settings) -> Lost:
    """Why an import that says queued or running is in fact dead, or None.

    With RQ, the job is asked: failed (its worker was killed and its retry used up) or gone
    long after it was queued. Either way, a load past `KRAVLAB_IMPORT_TIMEOUT_SECONDS` is
    dead too (RQ stops it at that time; an in-process load died with its server).
    """

    def lost(row: dict[str, Any]) -> str | None:
        now = datetime.now(UTC)
        since = aware(row["started_at"] or row["created_at"])
        if now - since > timedelta(seconds=settings.import_timeout_seconds):
            return "the load did not finish within its time: nothing was loaded, import again"
        if not settings.redis_url:
            return None
        state = job_state(settings, row["id"])
        if state in ("failed", "stopped", "canceled") or (
            state == "missing" and now - aware(row["created_at"]) > LOST_JOB_GRACE
        ):
            return "the worker loading it stopped (killed or crashed): nothing was loaded"
        return None

    return lost


def job_id(import_id: UUID | str) -> str:
    return f"import-{import_id}"


def job_state(settings: Settings, import_id: UUID | str) -> str | None:
    """The RQ job's status, 'missing', or None when Redis cannot say."""
    from redis.exceptions import RedisError
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    from backend.queue import redis_connection

    assert settings.redis_url
    try:
        job = Job.fetch(job_id(import_id), connection=redis_connection(settings.redis_url))
        status = job.get_status(refresh=False)
        return "missing" if status is None else str(status.value)
    except NoSuchJobError:
        return "missing"
    except RedisError:
        return None


async def get(scope: TenantScope, import_id: UUID, lost: Lost) -> dict[str, Any]:
    row = await scope.get(Import, import_id, *(getattr(Import, c) for c in COLUMNS))
    return out(await _settle_lost(scope, row, lost))


async def _settle_lost(scope: TenantScope, row: dict[str, Any], lost: Lost) -> dict[str, Any]:
    """An import whose job died (worker killed past its retries, a server gone with its
    in-process job, a load past its time) is failed here rather than shown `running`
    forever. Its transaction died with the job, so nothing of it is in the book."""
    if row["status"] not in ("queued", "running"):
        return row
    why = await asyncio.to_thread(lost, row)  # may ask Redis: off the server's loop
    if why is None:
        return row
    problems = _internal(why)
    async with write_transaction():
        changed = (
            await scope.update(
                Import,
                {
                    Import.status: "failed",
                    Import.stage: "failed",
                    Import.errors: _problem_json(problems),
                    Import.error_count: 1,
                    Import.finished_at: datetime.now(UTC),
                },
            )
            .where((Import.id == row["id"]) & Import.status.is_in(["queued", "running"]))
            .returning(Import.id)
        )
        if changed:
            await audit.record(
                row["created_by"],
                "imports.failed",
                "import",
                row["id"],
                scope.tenant_id,
                problems=1,
            )
    fresh = await scope.get(Import, row["id"], *(getattr(Import, c) for c in COLUMNS))
    return fresh


async def page(
    scope: TenantScope,
    limit: int,
    cursor: str | None,
    lost: Lost,
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first, keyset-paginated on (created_at, id)."""
    from tenants.pagination import decode_cursor_as, keyset_page, utc_moment

    query = scope.select(Import, *(getattr(Import, c) for c in COLUMNS))
    if cursor is not None:
        at, after = decode_cursor_as(cursor, utc_moment, UUID)
        query = query.where(
            (Import.created_at < at) | ((Import.created_at == at) & (Import.id < after))
        )
    rows, next_cursor = await keyset_page(
        query.order_by(Import.created_at, Import.id, ascending=False),
        limit,
        lambda r: (r["created_at"].isoformat(), r["id"]),
    )
    return [out(await _settle_lost(scope, r, lost)) for r in rows], next_cursor
