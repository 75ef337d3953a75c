"""The book summed per tenant and calendar month (`book_months`), for figures over months.

The console's monthly trend and its recovery cohorts would otherwise sum a year of every
client's invoices and payments on each read (2.4 s at 10 000 000 invoices). The rows are
kept by triggers in the database (migration `2026-11-23T17:00:01`, which also explains
each measure), so no write path can forget them; a figure read from here equals the one
summed from the book, which `tests/integration/test_book_months.py` holds them to.

On PostgreSQL each writing statement appends its change as rows of its own, so a figure is
the SUM of a (tenant, month, measure)'s rows, and `compact` folds them back to one; the
daily dunning job does it for every tenant. SQLite keeps one row per key already.
"""

from __future__ import annotations

from backend.tables import BookMonth
from tenants.scope import TenantScope
from tenants.transactions import write_transaction

INVOICED = "invoiced"  # live invoices' amounts by issue month
DUE = "due"  # live invoices' amounts by due month: a recovery cohort's size
CASH_IN = "cash_in"  # payments by paid month (matched or not)
FEES = "fees"  # dunning steps' fees by run month, failed and skipped ones excluded
# Days after due a recovery curve is read at, and the measure of the payments (on live
# invoices, by the invoice's due month) made up to that day since the one before.
RECOVERY_DAYS = (0, 30, 60, 90)
PAID_BY = {0: "paid_d0", 30: "paid_d30", 60: "paid_d60", 90: "paid_d90"}


async def compact(scope: TenantScope) -> None:
    """Fold the tenant's appended rows into one per (month, measure); sums are unchanged."""
    async with write_transaction():
        await scope.fold(BookMonth, ("month", "measure"), "value")
