"""Validation cost of one batch body: what a worker spends before it writes or refuses.

    .venv/bin/python bench/validation.py [--rows 10000] [--rounds 5]

Times `validation.decode_body` plus the batch's business rules (as `errors.check_body`
and `ingest.ingest_invoices` run them), in-process and without a database, for:
a valid batch, the same batch with every row wrong in two fields, and an over-limit batch
(six times the row limit, every row wrong) that must be refused before its rows are
read. Prints the median of `--rounds`, wall clock and CPU time of this process (on a
shared machine the wall clock includes waiting for a core), and the answer's size.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.errors import _body  # noqa: E402
from backend.ingest import MAX_BATCH_ROWS, InvoiceBatch, invoice_rule_errors  # noqa: E402
from backend.validation import InvalidBody, decode_body, fields_of  # noqa: E402
from tenants.access import Principal  # noqa: E402
from tenants.scope import TenantScope  # noqa: E402
from tests.support.world import invoice  # noqa: E402


def _scope() -> TenantScope:
    principal = Principal.key(uuid.uuid4(), uuid.uuid4(), ("invoices:write",), "bench")
    return TenantScope(principal.tenant_id, "SEK", "SE", "active", principal)  # type: ignore[arg-type]


def validate(raw: bytes, scope: TenantScope) -> tuple[int, int]:
    """(status, answer bytes) as the service would answer, without the HTTP around it."""
    try:
        batch = decode_body(raw, InvoiceBatch)
    except InvalidBody as exc:
        errors = exc.errors + invoice_rule_errors(exc.partial, scope)
        return 422, len(msgspec.json.encode(_body(422, "invalid input", errors)))
    errors = invoice_rule_errors({"invoices": [fields_of(r) for r in batch.invoices]}, scope)
    if errors:
        return 422, len(msgspec.json.encode(_body(422, "invalid input", errors)))
    return 200, 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=MAX_BATCH_ROWS)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    scope = _scope()
    valid: list[dict[str, Any]] = [
        invoice(f"B-{i}", debtor=f"D-{i % 500}", amount=1_000 + i, reference=f"R-{i}")
        for i in range(args.rows)
    ]
    wrong = [{**row, "amount": -1, "currency": "sek"} for row in valid]
    cases = {
        f"valid, {args.rows} rows": valid,
        f"every row wrong twice, {args.rows} rows": wrong,
        f"over the limit, {6 * MAX_BATCH_ROWS} rows wrong": wrong[:1] * (6 * MAX_BATCH_ROWS),
    }
    for name, rows in cases.items():
        raw = msgspec.json.encode({"invoices": rows})
        walls, cpus = [], []
        for _ in range(args.rounds):
            wall, cpu = time.perf_counter(), time.process_time()
            status, size = validate(raw, scope)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        print(
            f"{name:<40} body {len(raw) / 1e6:5.1f} MB  -> {status}  answer {size:>5} B  "
            f"wall {statistics.median(walls) * 1000:6.0f} ms  "
            f"cpu {statistics.median(cpus) * 1000:6.0f} ms"
        )


if __name__ == "__main__":
    main()
