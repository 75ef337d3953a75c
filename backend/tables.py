"""The invoice book: debtors, invoices, payments, state changes, idempotency and audit.

Money is an integer of minor units with its currency (never a float; Numeric only for the
sums in `book_months`, which may pass what a 64-bit integer holds).
Every row carries its tenant; `tenants.scope.TenantScope` is the only way handlers reach
these tables. `(tenant, external_id)` is unique per table (see the migration that adds the
composite indexes, which Piccolo's column API cannot declare).
"""

from __future__ import annotations

from decimal import Decimal

from piccolo.columns import (
    UUID,
    BigInt,
    BigSerial,
    Boolean,
    Bytea,
    Date,
    ForeignKey,
    Integer,
    Numeric,
    OnDelete,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.table import Table

from tenants.tables import Tenant


class Debtor(Table, tablename="debtors"):
    id = UUID(primary_key=True)
    tenant = ForeignKey(Tenant, null=False, on_delete=OnDelete.cascade)
    external_id = Varchar(length=128)
    name = Varchar(length=256)
    type = Varchar(length=3)
    email = Varchar(length=254, null=True, default=None)
    phone = Varchar(length=32, null=True, default=None)
    address = Varchar(length=512, null=True, default=None)
    org_no = Varchar(length=32, null=True, default=None)
    content_hash = Varchar(length=32)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class Invoice(Table, tablename="invoices"):
    id = UUID(primary_key=True)
    tenant = ForeignKey(Tenant, null=False, on_delete=OnDelete.cascade)
    debtor = ForeignKey(Debtor, null=False, on_delete=OnDelete.cascade, index=True)
    external_id = Varchar(length=128)
    issue_date = Date()
    due_date = Date()
    amount = BigInt()
    currency = Varchar(length=3)
    reference = Varchar(length=64, null=True, default=None)
    e_invoice = Boolean(default=False)
    fee_agreed = Boolean(default=False)
    description = Varchar(length=1000, null=True, default=None)
    # Flow state set by people: active, paused, disputed (later: in_collection, written_off).
    state = Varchar(length=16, default="active")
    paused_until = Date(null=True, default=None)
    # Kept in step with matched payments so lists can filter on them without a join.
    paid_amount = BigInt(default=0)
    settled_date = Date(null=True, default=None)
    # Fees the dunning engine charged (reminder, collection, B2B compensation), kept in step
    # with its recorded steps so lists show them without a join.
    fees_charged = BigInt(default=0)
    # Late interest outstanding as of `interest_as_of` (each dunning run brings it up to
    # date); null when a half-year's reference rate is missing: unknown, never shown as 0.
    interest_accrued = BigInt(null=True, default=0)
    interest_as_of = Date(null=True, default=None)
    content_hash = Varchar(length=32)
    created_at = Timestamptz()
    updated_at = Timestamptz()
    # `live` (pushed by the ERP: the dunning engine works it) or `import` (history loaded by
    # `POST /imports`: the simulator learns from it, the engine leaves it alone).
    origin = Varchar(length=8, default="live")


class Payment(Table, tablename="payments"):
    id = UUID(primary_key=True)
    tenant = ForeignKey(Tenant, null=False, on_delete=OnDelete.cascade)
    invoice = ForeignKey(Invoice, null=True, default=None, on_delete=OnDelete.set_null, index=True)
    external_id = Varchar(length=128)
    amount = BigInt()
    currency = Varchar(length=3)
    paid_date = Date()
    invoice_external_id = Varchar(length=128, null=True, default=None)
    reference = Varchar(length=64, null=True, default=None)
    # How it was matched: invoice_id, reference, manual; null while unmatched.
    matched_by = Varchar(length=16, null=True, default=None)
    matched_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()


class InvoiceEvent(Table, tablename="invoice_events"):
    """A state change made by a person or integration: pause, resume, dispute, resolve."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(Tenant, null=False, on_delete=OnDelete.cascade)
    invoice = ForeignKey(Invoice, null=False, on_delete=OnDelete.cascade, index=True)
    kind = Varchar(length=16)
    reason = Varchar(length=1000)
    until = Date(null=True, default=None)
    actor = Varchar(length=80)
    at = Timestamptz()


class IdempotencyRecord(Table, tablename="idempotency_records"):
    id = UUID(primary_key=True)
    # The tenant id the key belongs to, or "agency" for agency-level requests. Not a foreign
    # key: a key used to create a tenant outlives nothing but must not block its deletion.
    owner = Varchar(length=40)
    # Who sent the first request ("key:<uuid>" or "user:<uuid>"): a key is only ever
    # replayed to the credential that used it first, like Stripe's keys per API key.
    credential = Varchar(length=60, default="")
    key = Varchar(length=255)
    request_hash = Varchar(length=64)
    in_flight = Boolean(default=True)
    response_status = Integer(null=True, default=None)
    response_body = Text(null=True, default=None)
    response_type = Varchar(length=100, null=True, default=None)
    created_at = Timestamptz()


class Policy(Table, tablename="policies"):
    """A credit policy of a tenant: a name and its numbered versions (formats §2)."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(Tenant, null=False, on_delete=OnDelete.cascade, index=True)
    name = Varchar(length=200)
    created_at = Timestamptz()


class PolicyVersion(Table, tablename="policy_versions"):
    """One version of a policy: `draft`, then `live`, then `retired`; never edited in place.

    `document` is the policy JSON as validated by `simulator.policy`; the segment columns
    repeat its segment so that live versions can be checked against each other in SQL.
    """

    id = UUID(primary_key=True)
    tenant = ForeignKey(Tenant, null=False, on_delete=OnDelete.cascade, index=True)
    policy = ForeignKey(Policy, null=False, on_delete=OnDelete.cascade, index=True)
    number = Integer()
    status = Varchar(length=16, default="draft")
    document = Text()
    debtor_type = Varchar(length=8, null=True, default=None)
    min_amount = BigInt(default=0)
    max_amount = BigInt(null=True, default=None)
    created_at = Timestamptz()
    created_by = Varchar(length=80)
    activated_at = Timestamptz(null=True, default=None)
    activated_by = Varchar(length=80, null=True, default=None)
    retired_at = Timestamptz(null=True, default=None)


class ReferenceRate(Table, tablename="reference_rates"):
    """The Riksbank reference rate for one half-year (valid_from is 1 January or 1 July).

    Agency data, not a tenant's: every tenant's late interest reads the same table. Seeded
    from `simulator.rules.REFERENCE_RATE_BP`; later rows come through the API.
    """

    id = UUID(primary_key=True)
    valid_from = Date(unique=True)
    rate_bp = Integer()
    created_at = Timestamptz()
    created_by = Varchar(length=80)


class TenantProfile(Table, tablename="tenant_profiles"):
    """What a tenant's letters and messages say about it: how to pay, where to dispute."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(Tenant, null=False, on_delete=OnDelete.cascade, unique=True)
    org_number = Varchar(length=32, default="")
    bankgiro = Varchar(length=16, null=True, default=None)
    iban = Varchar(length=40, null=True, default=None)
    dispute_email = Varchar(length=254, null=True, default=None)
    dispute_phone = Varchar(length=32, null=True, default=None)
    language = Varchar(length=2, default="sv")
    updated_at = Timestamptz()


class DunningRun(Table, tablename="dunning_runs"):
    """One daily run of a tenant's live policies; at most one per tenant and date."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(Tenant, null=False, on_delete=OnDelete.cascade)
    run_date = Date()
    status = Varchar(length=16, default="running")
    steps = Integer(default=0)
    started_at = Timestamptz()
    finished_at = Timestamptz(null=True, default=None)


class DunningStep(Table, tablename="dunning_steps"):
    """A step the engine took for an invoice: its k-th contact (`ordinal`), recorded under a
    unique (invoice, ordinal) before anything is sent, with the fee it charged.

    `status`: pending (recorded, not yet delivered), sending (an attempt claimed), retrying,
    sent, failed (permanently: it
    does not count as sent and its fee is given back), task (a call for agency staff),
    skipped (a pre-due step whose day passed before the invoice came under the policy).
    """

    id = UUID(primary_key=True)
    tenant = ForeignKey(Tenant, null=False, on_delete=OnDelete.cascade)
    invoice = ForeignKey(Invoice, null=False, on_delete=OnDelete.cascade, index=True)
    ordinal = Integer()
    run_date = Date()
    policy = UUID()
    version = Integer()
    step_index = Integer()
    day = Integer()
    action = Varchar(length=32)
    channel = Varchar(length=16)
    fee = BigInt(default=0)
    fee_kind = Varchar(length=16, null=True, default=None)
    status = Varchar(length=16, default="pending")
    attempts = Integer(default=0)
    next_attempt_at = Timestamptz(null=True, default=None)
    provider_id = Varchar(length=200, null=True, default=None)
    last_error = Varchar(length=500, null=True, default=None)
    created_at = Timestamptz()
    sent_at = Timestamptz(null=True, default=None)


class Letter(Table, tablename="letters"):
    """A letter as it was sent (PDF), downloadable from the invoice."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(Tenant, null=False, on_delete=OnDelete.cascade)
    invoice = ForeignKey(Invoice, null=False, on_delete=OnDelete.cascade, index=True)
    step = ForeignKey(DunningStep, null=False, on_delete=OnDelete.cascade)
    pdf = Bytea()
    created_at = Timestamptz()


class CollectionCase(Table, tablename="collection_cases"):
    """An invoice handed over to collection (`escalate_after_days` after due, still unpaid):
    agency staff's work, one case per invoice."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(Tenant, null=False, on_delete=OnDelete.cascade, index=True)
    invoice = ForeignKey(Invoice, null=False, on_delete=OnDelete.cascade, unique=True)
    opened_on = Date()
    status = Varchar(length=16, default="open")
    outcome = Varchar(length=16, null=True, default=None)
    assignee = UUID(null=True, default=None)
    amount = BigInt()  # outstanding principal when it opened
    opened_at = Timestamptz()
    closed_at = Timestamptz(null=True, default=None)


class CaseNote(Table, tablename="case_notes"):
    id = UUID(primary_key=True)
    tenant = ForeignKey(Tenant, null=False, on_delete=OnDelete.cascade)
    case = ForeignKey(CollectionCase, null=False, on_delete=OnDelete.cascade, index=True)
    author = Varchar(length=80)
    text = Varchar(length=4000)
    at = Timestamptz()


class Event(Table, tablename="events"):
    """Something that happened to a tenant's book, written in the transaction that made it
    happen (`backend.events`): what a client's systems follow, listed or by webhook.

    `invoice` is a plain UUID, not a foreign key: an event names its invoice without tying
    the log's bulk writes to a lookup of it; both go with their tenant. `data` is JSON text.
    """

    id = UUID(primary_key=True)
    tenant = ForeignKey(Tenant, null=False, on_delete=OnDelete.cascade)
    kind = Varchar(length=32)
    invoice = UUID(null=True, default=None)
    data = Text(default="{}")
    at = Timestamptz()


class Webhook(Table, tablename="webhooks"):
    """A tenant's subscription: events of `events` (comma-separated kinds) are POSTed to
    `url`, signed with `secret` (kept because it signs; never answered back)."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(Tenant, null=False, on_delete=OnDelete.cascade, index=True)
    url = Varchar(length=2048)
    events = Varchar(length=1000)
    secret = Varchar(length=256)
    created_at = Timestamptz()
    created_by = Varchar(length=80)


class WebhookDelivery(Table, tablename="webhook_deliveries"):
    """One event owed to one webhook, created with the event (the outbox): `pending`,
    `sending` (an attempt claimed), `retrying`, `delivered` or `failed` (gave up)."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(Tenant, null=False, on_delete=OnDelete.cascade)
    webhook = ForeignKey(Webhook, null=False, on_delete=OnDelete.cascade, index=True)
    event = ForeignKey(Event, null=False, on_delete=OnDelete.cascade)
    status = Varchar(length=16, default="pending")
    attempts = Integer(default=0)
    next_attempt_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()
    delivered_at = Timestamptz(null=True, default=None)


class WebhookAttempt(Table, tablename="webhook_attempts"):
    """The delivery log: every attempt with its answer (a short prefix of the body only)."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(Tenant, null=False, on_delete=OnDelete.cascade)
    delivery = ForeignKey(WebhookDelivery, null=False, on_delete=OnDelete.cascade, index=True)
    attempt = Integer()
    status_code = Integer(null=True, default=None)
    error = Varchar(length=500, null=True, default=None)
    response = Varchar(length=200, null=True, default=None)
    at = Timestamptz()


class PaymentPlan(Table, tablename="payment_plans"):
    """An agreement to pay an invoice in instalments (avbetalningsplan), within the policy's
    limits; `status`: active, completed (paid), broken (an instalment missed: flow resumed)."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(Tenant, null=False, on_delete=OnDelete.cascade)
    invoice = ForeignKey(Invoice, null=False, on_delete=OnDelete.cascade, index=True)
    status = Varchar(length=16, default="active")
    setup_fee = BigInt(default=0)
    paid_before = BigInt(default=0)  # the invoice's paid amount when the plan was made
    created_at = Timestamptz()
    created_by = Varchar(length=80)
    ended_on = Date(null=True, default=None)


class Instalment(Table, tablename="instalments"):
    id = UUID(primary_key=True)
    tenant = ForeignKey(Tenant, null=False, on_delete=OnDelete.cascade)
    plan = ForeignKey(PaymentPlan, null=False, on_delete=OnDelete.cascade, index=True)
    number = Integer()
    due_date = Date()
    amount = BigInt()


class TenantTemplate(Table, tablename="tenant_templates"):
    """A tenant's own wording of one message template (`sv/reminder.sms.txt`), rendered in
    the channels' sandbox; the defaults ship with the code."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(Tenant, null=False, on_delete=OnDelete.cascade, index=True)
    name = Varchar(length=64)
    source = Text()
    updated_at = Timestamptz()


class Contact(Table, tablename="contacts"):
    """A contact made before kravlab (formats §1 `actions.csv`), loaded by an import: the
    history the simulator learns from beside the engine's own `dunning_steps`."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(Tenant, null=False, on_delete=OnDelete.cascade)
    invoice = ForeignKey(Invoice, null=False, on_delete=OnDelete.cascade, index=True)
    date = Date()
    action = Varchar(length=32)
    channel = Varchar(length=16, null=True, default=None)
    fee = BigInt(default=0)
    import_id = UUID(null=True, default=None)


class Import(Table, tablename="imports"):
    """One `POST /imports`: its files wait under `var/imports/<id>/` until a job loads them
    all or nothing. `status`: queued, running, done, failed; `errors` is JSON (file, line,
    column, message) capped like every error list, `error_count` the whole count."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(Tenant, null=False, on_delete=OnDelete.cascade, index=True)
    status = Varchar(length=16, default="queued")
    progress = Integer(default=0)  # per mille, so the column stays an integer
    stage = Varchar(length=32, default="queued")
    invoices = Integer(default=0)
    payments = Integer(default=0)
    contacts = Integer(default=0)
    errors = Text(default="[]")
    error_count = Integer(default=0)
    created_by = Varchar(length=80)
    created_at = Timestamptz()
    started_at = Timestamptz(null=True, default=None)
    finished_at = Timestamptz(null=True, default=None)


class TenantModel(Table, tablename="tenant_models"):
    """A payment-behaviour model fitted to one tenant's book (formats §5 file under
    `var/models/`), with the fingerprint of the data it saw. `status`: queued, running,
    done, failed; the newest `done` one serves."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(Tenant, null=False, on_delete=OnDelete.cascade, index=True)
    status = Varchar(length=16, default="queued")
    path = Varchar(length=512, null=True, default=None)
    fingerprint = Varchar(length=64, null=True, default=None)
    invoices = Integer(default=0)
    summary = Text(default="{}")  # parameters, priors, warnings, backtest (JSON)
    error = Varchar(length=500, null=True, default=None)
    created_at = Timestamptz()
    fitted_at = Timestamptz(null=True, default=None)
    # Written while a job works on it: a `running` row whose heartbeat stopped had its worker
    # killed, and is failed rather than left running forever.
    heartbeat_at = Timestamptz(null=True, default=None)


class Simulation(Table, tablename="simulations"):
    """A what-if request and, once done, its forecast (formats §3). `request_key` hashes
    the request with the data fingerprint, so an identical request on unchanged data reuses
    the stored result. `status`: queued, running, done, failed, cancelled."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(Tenant, null=False, on_delete=OnDelete.cascade, index=True)
    status = Varchar(length=16, default="queued")
    progress = Integer(default=0)  # per mille
    request = Text()
    request_key = Varchar(length=64, index=True)
    fingerprint = Varchar(length=64, null=True, default=None)
    model = UUID(null=True, default=None)
    result = Text(null=True, default=None)
    error = Varchar(length=500, null=True, default=None)
    created_by = Varchar(length=80)
    created_at = Timestamptz()
    started_at = Timestamptz(null=True, default=None)
    finished_at = Timestamptz(null=True, default=None)
    heartbeat_at = Timestamptz(null=True, default=None)
    # The scale-out: a portfolio simulation's part for this tenant names the portfolio run.
    portfolio = UUID(null=True, default=None)


class SimulatedVersion(Table, tablename="simulated_versions"):
    """A policy version a simulation forecast as a candidate, against the live versions of
    `baseline` (JSON list of [policy, version]): what the go-live gate looks up."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(Tenant, null=False, on_delete=OnDelete.cascade)
    simulation = ForeignKey(Simulation, null=False, on_delete=OnDelete.cascade, index=True)
    policy = UUID()
    version = Integer()
    name = Varchar(length=128)
    baseline = Varchar(length=2000)


class PortfolioRun(Table, tablename="portfolio_runs"):
    """An agency-wide simulation: one `simulations` row per tenant (their `portfolio`
    names this run), each its own job, and a dependent job that combines their forecasts
    per currency. Agency-level: it holds totals, never a tenant's rows."""

    id = UUID(primary_key=True)
    status = Varchar(length=16, default="queued")
    request = Text()
    result = Text(null=True, default=None)
    error = Varchar(length=500, null=True, default=None)
    created_by = Varchar(length=80)
    created_at = Timestamptz()
    finished_at = Timestamptz(null=True, default=None)


class BookMonth(Table, tablename="book_months"):
    """The book summed per tenant, calendar month and measure: what the console's monthly
    trend and recovery cohorts read instead of ten million invoices.

    Kept by database triggers on `invoices`, `payments` and `dunning_steps` (migration
    `2026-11-23T17:00:01`), so every write path counts, whichever module makes it. Measures
    (`backend.book_months`): `invoiced` (live invoices by issue month), `due` (live invoices
    by due month), `cash_in` (payments by paid month), `fees` (steps' fees by run month,
    failed and skipped ones excluded), and `paid_d0` … `paid_d90` (payments on live
    invoices by the invoice's due month and days after due, in buckets up to 90). On
    PostgreSQL a writing statement appends its change as rows of its own (no row is locked
    by two writers); `book_months.compact` folds them. A figure is the SUM over its rows.
    """

    id = BigSerial(primary_key=True)
    tenant = ForeignKey(Tenant, null=False, on_delete=OnDelete.cascade)
    month = Date()
    measure = Varchar(length=16)
    # Numeric, not bigint: amounts are bounded one by one (`ingest.MAX_AMOUNT`), their count
    # is not, and a month of waiting payments can add up past 2^63 where no invoice does.
    value = Numeric(default=Decimal(0))
