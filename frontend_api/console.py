"""The web console at /console: server-rendered pages (Jinja2) that htmx updates in place.

Every page reads through the same scopes and services as the API, and every action calls
the same service function as the API route it mirrors (`book.change_state`, `cases.assign`,
`plans.create`, `dunning.record_call`, `policies.add_version`, `policies.activate`), after
validating the form with the API's own request struct. Each route declares its permission
like an API route, so the one guard (`tenants.access.authorize`) decides, and another
tenant's page is a 404 exactly as its JSON is.

Errors: a browser gets an HTML page (or, under htmx, a message in the page's flash area);
any other client gets the API's JSON errors. An unauthenticated browser is sent to log in.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

import jinja2
import msgspec
import structlog
from litestar import Request, Response, Router, get, post
from litestar.di import NamedDependency
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
)
from litestar.middleware import DefineMiddleware
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Redirect
from litestar.static_files import create_static_files_router

from backend import book, cases, dunning, plans, policies, simulations
from backend.api.book import PauseIn, ReasonIn
from backend.api.cases import CloseIn, NoteIn
from backend.api.dunning import CallOutcomeIn, PlanIn
from backend.api.policies import Number
from backend.api.simulations import SimulationIn
from backend.channels.phone import CallOutcome
from backend.errors import EXCEPTION_HANDLERS as JSON_HANDLERS
from backend.settings import Settings
from backend.tables import DunningStep
from backend.validation import SINGLE_LINE, FieldError, InvalidInput
from frontend_api import figures, i18n
from frontend_api.dashboard import dashboard
from frontend_api.portfolio import portfolio
from frontend_api.schemas import SortKey
from frontend_api.session import COOKIE, ConsoleAuthMiddleware, csrf_token
from tenants.access import Principal
from tenants.auth import issue_session_token, login
from tenants.onboarding import ConflictError
from tenants.pagination import BadCursor
from tenants.scope import AgencyScope, TenantScope
from tenants.tables import Tenant
from tenants.throttle import Throttle

log = structlog.get_logger("kravlab")

HERE = Path(__file__).parent
STATIC_PATH = "/console/static"
# Longest policy document the editor sends (a policy of many steps is a few kB).
MAX_DOCUMENT = 50_000
LOGIN_ADDRESS_FACTOR = 5
SINGLE_LINE_RE = re.compile(SINGLE_LINE)
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_STATIC_NAME = 200

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
S = TypeVar("S", bound=msgspec.Struct)


def _language(request: Request[Any, Any, Any]) -> tuple[str, bool]:
    """The page's language and whether it was just chosen (?lang=, kept in a cookie)."""
    asked = request.query_params.get("lang")
    if asked in i18n.LANGUAGES:
        return asked, True
    kept = request.cookies.get(i18n.COOKIE)
    if kept in i18n.LANGUAGES:
        return kept, False
    accepted = request.headers.get("accept-language", "")
    return ("en" if accepted.lower().startswith("en") else i18n.DEFAULT), False


def _is_htmx(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("hx-request") == "true"


def render(
    request: Request[Any, Any, Any],
    template: str,
    *,
    code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Response[str]:
    lang, chosen = _language(request)
    principal = request.scope.get("user")
    settings: Settings = request.app.state.settings
    session = request.cookies.get(COOKIE)
    html = _templates.get_template(template).render(
        t=i18n.translator(lang),
        lang=lang,
        money=lambda minor, currency, decimals=False: i18n.money(minor, currency, lang, decimals),
        number=lambda value: i18n.number(value, lang),
        day=i18n.day,
        principal=principal if isinstance(principal, Principal) else None,
        may=lambda permission: isinstance(principal, Principal) and principal.may(permission),
        csrf=csrf_token(session, settings.secret_key) if session else "",
        path=request.url.path,
        static=STATIC_PATH,
        **context,
    )
    response = Response(html, status_code=code, media_type="text/html", headers=headers)
    if chosen:
        response.set_cookie(i18n.COOKIE, lang, max_age=365 * 86400, samesite="lax")
    return response


def _form_struct(struct: type[S], form: dict[str, Any]) -> S:
    """The form as the API's request struct: the same limits and patterns apply; an empty
    field is an absent one."""
    given = {k: v for k, v in form.items() if v != ""}
    try:
        return msgspec.convert(given, struct, strict=False)
    except msgspec.ValidationError as exc:
        raise InvalidInput([FieldError("form", str(exc))]) from exc


async def _form(request: Request[Any, Any, Any]) -> dict[str, Any]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def _tenant_name(tenant_id: UUID) -> str:
    row = await Tenant.select(Tenant.name).where(Tenant.id == tenant_id).first()
    return row["name"] if row else ""


def _refresh(url: str) -> Response[str]:
    """htmx: load `url` as the page (after an action that changes what it shows)."""
    return Response("", status_code=200, headers={"HX-Redirect": url})


# ---------------------------------------------------------------------------- entry, login


@get("/", opt={"public": True}, include_in_schema=False)
async def root() -> Redirect:
    return Redirect("/console")


@get("", opt={"permission": "me"}, include_in_schema=False)
async def home(principal: NamedDependency[Principal]) -> Redirect:
    if principal.tenant_id is None:
        return Redirect("/console/portfolio")
    return Redirect(f"/console/tenants/{principal.tenant_id}")


@get("/login", opt={"public": True}, include_in_schema=False)
async def login_page(request: Request[Any, Any, Any]) -> Response[str]:
    return render(request, "login.html", error=None, email="")


@post("/login", opt={"public": True, "no_idempotency": True}, include_in_schema=False)
async def login_submit(
    request: Request[Any, Any, Any], settings: NamedDependency[Settings]
) -> Response[str]:
    form = await _form(request)
    email, password = form.get("email", "")[:254].strip(), form.get("password", "")[:1024]
    t = i18n.translator(_language(request)[0])
    if not email or not password or not SINGLE_LINE_RE.match(email):
        return render(request, "login.html", code=401, error=t("wrong_login"), email="")
    # The API's throttles: per account and per address, whichever door the guesser uses.
    account = email.lower()
    address = request.client.host if request.client else "unknown"
    limit = settings.login_failures_per_minute
    throttles = (
        (Throttle("login_accounts", limit), account),
        (Throttle("login_addresses", limit * LOGIN_ADDRESS_FACTOR), address),
    )
    for throttle, key in throttles:
        await throttle.check(request.app, key)
    try:
        user = await login(email, password)
    except (ConflictError, PermissionDeniedException) as exc:
        message = exc.detail if isinstance(exc, HTTPException) else str(exc)
        return render(request, "login.html", code=403, error=message, email=email)
    if user is None:
        for throttle, key in throttles:
            await throttle.hit(request.app, key)
        return render(request, "login.html", code=401, error=t("wrong_login"), email=email)
    token = issue_session_token(user["id"], settings.secret_key, settings.token_ttl_seconds)
    response: Response[str] = Response("", status_code=303, headers={"Location": "/console"})
    response.set_cookie(
        COOKIE,
        token,
        max_age=settings.token_ttl_seconds,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/console",
    )
    return response


@post("/logout", opt={"permission": "me", "no_idempotency": True}, include_in_schema=False)
async def logout() -> Response[str]:
    response: Response[str] = Response("", headers={"HX-Redirect": "/console/login"})
    response.delete_cookie(COOKIE, path="/console")
    return response


# ---------------------------------------------------------------------------------- agency


@get("/portfolio", opt={"permission": "portfolio:read"}, include_in_schema=False)
async def portfolio_page(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    sort: FromQuery[SortKey] = "outstanding",
    order: FromQuery[Literal["asc", "desc"]] = "desc",
    q: Annotated[str | None, QueryParameter(max_length=100, pattern=SINGLE_LINE)] = None,
    alerts: FromQuery[bool | None] = None,
) -> Response[str]:
    agency = AgencyScope.open(principal)
    on = book.today()
    found = await portfolio(
        agency, on, sort=sort, descending=order == "desc", q=q, with_alerts=alerts
    )
    context: dict[str, Any] = {"p": found, "q": q or "", "alerts": alerts}
    if _is_htmx(request) and request.headers.get("hx-target") == "portfolio-table":
        return render(request, "_portfolio_table.html", **context)
    return render(request, "portfolio.html", **context)


@get("/portfolio/trend", opt={"permission": "portfolio:read"}, include_in_schema=False)
async def portfolio_trend(
    request: Request[Any, Any, Any], principal: NamedDependency[Principal]
) -> Response[str]:
    """The months, loaded after the table (past months from `book_months`, this month
    summed from the book)."""
    series = await figures.monthly(AgencyScope.open(principal), book.today(), 12)
    return render(request, "_trend.html", series=series)


@get("/work", opt={"permission": "cases:work"}, include_in_schema=False)
async def work_page(
    request: Request[Any, Any, Any], principal: NamedDependency[Principal]
) -> Response[str]:
    agency = AgencyScope.open(principal)
    open_cases, _ = await cases.agency_page(agency, "open", 200, None)
    calls = await dunning.call_queue(agency, 200)
    tenants = await Tenant.select(Tenant.id, Tenant.name, Tenant.currency)
    names = {str(r["id"]): r["name"] for r in tenants}
    currencies = {str(r["id"]): r["currency"] for r in tenants}
    return render(
        request, "work.html", cases=open_cases, calls=calls, names=names, currencies=currencies
    )


T = "/tenants/{tenant_id:uuid}"


@get(T + "/cases/{case_id:uuid}", opt={"permission": "cases:work"}, include_in_schema=False)
async def case_page(
    request: Request[Any, Any, Any], tenant: NamedDependency[TenantScope], case_id: FromPath[UUID]
) -> Response[str]:
    case = await cases.get(tenant, case_id)
    template = "_case.html" if _is_htmx(request) else "case.html"
    return render(
        request,
        template,
        case=case,
        tenant_id=tenant.tenant_id,
        currency=tenant.currency,
        tenant_name=await _tenant_name(tenant.tenant_id),
    )


async def _case_done(
    request: Request[Any, Any, Any], tenant: TenantScope, case: dict[str, Any]
) -> Response[str]:
    return render(
        request, "_case.html", case=case, tenant_id=tenant.tenant_id, currency=tenant.currency
    )


@post(
    T + "/cases/{case_id:uuid}/assign",
    opt={"permission": "cases:work", "no_idempotency": True},
    include_in_schema=False,
)
async def case_assign(
    request: Request[Any, Any, Any],
    tenant: NamedDependency[TenantScope],
    principal: NamedDependency[Principal],
    case_id: FromPath[UUID],
) -> Response[str]:
    form = await _form(request)
    if form.get("to") not in ("me", "nobody"):
        raise InvalidInput([FieldError("to", "me or nobody")])
    assignee = principal.id if form["to"] == "me" and principal.kind == "user" else None
    return await _case_done(request, tenant, await cases.assign(tenant, case_id, assignee))


@post(
    T + "/cases/{case_id:uuid}/notes",
    opt={"permission": "cases:work", "no_idempotency": True},
    include_in_schema=False,
)
async def case_note(
    request: Request[Any, Any, Any], tenant: NamedDependency[TenantScope], case_id: FromPath[UUID]
) -> Response[str]:
    data = _form_struct(NoteIn, await _form(request))
    return await _case_done(request, tenant, await cases.note(tenant, case_id, data.text))


@post(
    T + "/cases/{case_id:uuid}/close",
    opt={"permission": "cases:work", "no_idempotency": True},
    include_in_schema=False,
)
async def case_close(
    request: Request[Any, Any, Any], tenant: NamedDependency[TenantScope], case_id: FromPath[UUID]
) -> Response[str]:
    data = _form_struct(CloseIn, await _form(request))
    return await _case_done(request, tenant, await cases.close(tenant, case_id, data.outcome))


@post(
    T + "/invoices/{invoice_id:uuid}/contacts/{step_id:uuid}/outcome",
    opt={"permission": "cases:work", "no_idempotency": True},
    include_in_schema=False,
)
async def call_outcome(
    request: Request[Any, Any, Any],
    tenant: NamedDependency[TenantScope],
    invoice_id: FromPath[UUID],
    step_id: FromPath[UUID],
) -> Response[str]:
    data = _form_struct(CallOutcomeIn, await _form(request))
    step = await tenant.get(DunningStep, step_id, DunningStep.invoice)
    if str(step["invoice"]) != str(invoice_id):
        raise NotFoundException("contact not found")
    outcome = CallOutcome(outcome=data.outcome, promised_date=data.promised_date, note=data.note)
    done = await dunning.record_call(tenant, step_id, outcome)
    return render(request, "_call_done.html", done=done)


# ---------------------------------------------------------------------------------- client


@get(T, opt={"permission": "read"}, include_in_schema=False)
async def dashboard_page(
    request: Request[Any, Any, Any], tenant: NamedDependency[TenantScope]
) -> Response[str]:
    board = await dashboard(tenant, book.today())
    return render(
        request,
        "dashboard.html",
        d=board,
        tenant_id=tenant.tenant_id,
        tenant_name=await _tenant_name(tenant.tenant_id),
    )


InvoiceStatus = Literal[
    "",  # the filter's "all"
    "open",
    "overdue",
    "paid",
    "paused",
    "disputed",
    "planned",
    "in_collection",
    "written_off",
]


@get(T + "/invoices", opt={"permission": "read"}, include_in_schema=False)
async def invoices_page(
    request: Request[Any, Any, Any],
    tenant: NamedDependency[TenantScope],
    status: FromQuery[InvoiceStatus | None] = None,
    number: Annotated[str | None, QueryParameter(max_length=128, pattern=SINGLE_LINE)] = None,
    cursor: Annotated[str | None, QueryParameter(max_length=512)] = None,
) -> Response[str]:
    listed = await book.list_invoices(
        tenant,
        status=status or None,
        debtor=None,
        external_id=number or None,
        due_from=None,
        due_to=None,
        limit=50,
        cursor=cursor,
    )
    return render(
        request,
        "invoices.html",
        listed=listed,
        status=status,
        search=number or "",
        statuses=book.STATUSES,
        tenant_id=tenant.tenant_id,
        tenant_name=await _tenant_name(tenant.tenant_id),
        currency=tenant.currency,
    )


async def _invoice_view(tenant: TenantScope, invoice_id: UUID) -> dict[str, Any]:
    invoice = await book.get_invoice(tenant, invoice_id)
    steps = (
        await tenant.select(
            DunningStep,
            DunningStep.id,
            DunningStep.run_date,
            DunningStep.action,
            DunningStep.channel,
            DunningStep.fee,
            DunningStep.status,
            DunningStep.last_error,
        )
        .where(DunningStep.invoice == invoice_id)
        .order_by(DunningStep.ordinal)
    )
    timeline = [
        {**entry, "kind": "payment" if entry["type"] == "payment" else entry["type"]}
        for entry in invoice["timeline"]
    ] + [
        {
            "type": "contact",
            "kind": "contact",
            "date": step["run_date"].isoformat()
            if isinstance(step["run_date"], date)
            else str(step["run_date"]),
            **step,
        }
        for step in steps
    ]
    try:
        plan: dict[str, Any] | None = await plans.get(tenant, invoice_id)
    except NotFoundException:
        plan = None
    if plan is not None:
        timeline.append(
            {
                "type": "plan",
                "kind": "plan",
                "date": plan["created_at"].isoformat(),
                "status": plan["status"],
                "instalments": len(plan["instalments"]),
            }
        )
    timeline.sort(key=lambda entry: str(entry["date"]))
    calls = [s for s in steps if s["channel"] == "phone" and s["status"] == "task"]
    return {"invoice": invoice, "timeline": timeline, "plan": plan, "calls": calls}


@get(T + "/invoices/{invoice_id:uuid}", opt={"permission": "read"}, include_in_schema=False)
async def invoice_page(
    request: Request[Any, Any, Any],
    tenant: NamedDependency[TenantScope],
    invoice_id: FromPath[UUID],
) -> Response[str]:
    view = await _invoice_view(tenant, invoice_id)
    return render(
        request,
        "invoice.html",
        tenant_id=tenant.tenant_id,
        tenant_name=await _tenant_name(tenant.tenant_id),
        today=book.today(),
        **view,
    )


@post(
    T + "/invoices/{invoice_id:uuid}/state",
    opt={"permission": "invoices:manage", "no_idempotency": True},
    include_in_schema=False,
)
async def invoice_state(
    request: Request[Any, Any, Any],
    tenant: NamedDependency[TenantScope],
    invoice_id: FromPath[UUID],
) -> Response[str]:
    form = await _form(request)
    kind = form.pop("kind", "")
    if kind == "pause":
        pause = _form_struct(PauseIn, form)
        await book.change_state(tenant, invoice_id, "pause", pause.reason, pause.until)
    elif kind in ("dispute", "resume", "resolve"):
        if kind == "dispute" or form.get("reason"):
            reason = _form_struct(ReasonIn, form).reason
        else:
            reason = ""
        await book.change_state(tenant, invoice_id, kind, reason)
    else:
        raise InvalidInput([FieldError("kind", "pause, resume, dispute or resolve")])
    return _refresh(f"/console/tenants/{tenant.tenant_id}/invoices/{invoice_id}")


@post(
    T + "/invoices/{invoice_id:uuid}/payment-plan",
    opt={"permission": "invoices:manage", "no_idempotency": True},
    include_in_schema=False,
)
async def invoice_plan(
    request: Request[Any, Any, Any],
    tenant: NamedDependency[TenantScope],
    invoice_id: FromPath[UUID],
) -> Response[str]:
    data = _form_struct(PlanIn, await _form(request))
    await plans.create(tenant, invoice_id, data.installments, data.first_due, data.interval_days)
    return _refresh(f"/console/tenants/{tenant.tenant_id}/invoices/{invoice_id}")


# -------------------------------------------------------------------------------- policies


@get(T + "/policies", opt={"permission": "read"}, include_in_schema=False)
async def policies_page(
    request: Request[Any, Any, Any], tenant: NamedDependency[TenantScope]
) -> Response[str]:
    items, _ = await policies.page(tenant, 200, None)
    return render(
        request,
        "policies.html",
        items=items,
        tenant_id=tenant.tenant_id,
        tenant_name=await _tenant_name(tenant.tenant_id),
        starter=json.dumps(STARTER_POLICY, indent=2, ensure_ascii=False),
    )


STARTER_POLICY: dict[str, Any] = {
    "name": "Ny policy",
    "segment": {"debtor_type": "b2c"},
    "steps": [
        {"day": 5, "action": "reminder", "channel": "email"},
        {"day": 20, "action": "reminder", "channel": "letter", "fee": 6000},
    ],
    "escalate_after_days": 60,
}


@get(T + "/policies/{policy_id:uuid}", opt={"permission": "read"}, include_in_schema=False)
async def policy_page(
    request: Request[Any, Any, Any],
    tenant: NamedDependency[TenantScope],
    policy_id: FromPath[UUID],
) -> Response[str]:
    policy = await policies.get(tenant, policy_id)
    latest = max(policy["versions"], key=lambda v: v["number"])
    return render(
        request,
        "policy.html",
        policy=policy,
        document=json.dumps(latest["policy"], indent=2, ensure_ascii=False),
        tenant_id=tenant.tenant_id,
        tenant_name=await _tenant_name(tenant.tenant_id),
    )


def _document(form: dict[str, Any]) -> Any:
    text = form.get("document", "")
    if len(text) > MAX_DOCUMENT:
        raise InvalidInput([FieldError("policy", f"at most {MAX_DOCUMENT} characters")])
    try:
        return msgspec.json.decode(text.encode())
    except msgspec.DecodeError as exc:
        raise InvalidInput([FieldError("policy", f"not JSON: {exc}")]) from exc


@post(
    T + "/policies/check",
    opt={"permission": "policies:write", "no_idempotency": True},
    include_in_schema=False,
)
async def policy_check(
    request: Request[Any, Any, Any], tenant: NamedDependency[TenantScope]
) -> Response[str]:
    """The rule checks as the client types: `policies.parse`, the one the API stores by."""
    form = await _form(request)
    try:
        policy = policies.parse(_document(form))
    except InvalidInput as invalid:
        return render(request, "_checks.html", errors=invalid.errors, policy=None)
    return render(request, "_checks.html", errors=[], policy=policy)


@post(
    T + "/policies/save",
    opt={"permission": "policies:write", "no_idempotency": True},
    include_in_schema=False,
)
async def policy_save(
    request: Request[Any, Any, Any], tenant: NamedDependency[TenantScope]
) -> Response[str]:
    form = await _form(request)
    document = _document(form)
    if form.get("policy_id"):
        try:
            policy_id = UUID(form["policy_id"])
        except ValueError:
            raise InvalidInput([FieldError("policy_id", "not a policy id")]) from None
        await policies.add_version(tenant, policy_id, document)
    else:
        policy_id = (await policies.create(tenant, document))["id"]
    return _refresh(f"/console/tenants/{tenant.tenant_id}/policies/{policy_id}")


@post(
    T + "/policies/{policy_id:uuid}/versions/{number:int}/activate",
    opt={"permission": "policies:activate", "no_idempotency": True},
    include_in_schema=False,
)
async def policy_activate(
    tenant: NamedDependency[TenantScope], policy_id: FromPath[UUID], number: Number
) -> Response[str]:
    await policies.activate(tenant, policy_id, number)
    return _refresh(f"/console/tenants/{tenant.tenant_id}/policies/{policy_id}")


# -------------------------------------------------------------------------------- what-if


@post(
    T + "/policies/{policy_id:uuid}/versions/{number:int}/simulate",
    opt={"permission": "simulations:run", "no_idempotency": True},
    include_in_schema=False,
)
async def policy_simulate(
    tenant: NamedDependency[TenantScope],
    settings: NamedDependency[Settings],
    policy_id: FromPath[UUID],
    number: Number,
) -> Response[str]:
    """What the version would do against the live set: POST /simulations's struct and
    service, with the version as the one candidate (what the go-live gate looks for)."""
    request = msgspec.convert(
        {
            "candidates": {f"v{number}": {"policy_id": str(policy_id), "version": number}},
            "baseline": "live",
        },
        SimulationIn,
    )
    row, _ = await simulations.create(tenant, settings, msgspec.to_builtins(request))
    return _refresh(f"/console/tenants/{tenant.tenant_id}/simulations/{row['id']}")


@get(T + "/simulations/{simulation_id:uuid}", opt={"permission": "read"}, include_in_schema=False)
async def simulation_page(
    request: Request[Any, Any, Any],
    tenant: NamedDependency[TenantScope],
    settings: NamedDependency[Settings],
    simulation_id: FromPath[UUID],
) -> Response[str]:
    view = await simulations.get(tenant, settings, simulation_id)
    context: dict[str, Any] = {
        "sim": view,
        "tenant_id": tenant.tenant_id,
        "currency": tenant.currency,
        **_comparison(view),
    }
    if _is_htmx(request) and request.headers.get("hx-target") == "simulation":
        return render(request, "_simulation.html", **context)
    return render(
        request,
        "simulation.html",
        tenant_name=await _tenant_name(tenant.tenant_id),
        **context,
    )


RECOVERY_DAYS = ("30", "60", "90")


def _comparison(view: dict[str, Any]) -> dict[str, Any]:
    """The forecast laid out for the page: baseline first, then each candidate with its
    deltas; the cash curves as chart series with their 90 % bands."""
    result = view["result"] or {}
    results: dict[str, Any] = result.get("results") or {}
    if not results:
        return {
            "names": [],
            "results": {},
            "deltas": {},
            "chart": None,
            "warnings": result.get("warnings", []),
            "model": result.get("model"),
            "cohort": None,
            "recovery_days": [],
        }
    names = list(results)
    colours = ["#5b7bd5", "#2e9e6b", "#d08c2e", "#a63d9e"]
    first = results[names[0]]["cash_curve"]
    chart = {
        "kind": "bands",
        "percent": True,
        "x_label": "dag",
        "labels": [str(row[0]) for row in first],
        "series": [
            {
                "label": name,
                "values": [row[1] for row in results[name]["cash_curve"]],
                "low": [row[2] for row in results[name]["cash_curve"]],
                "high": [row[3] for row in results[name]["cash_curve"]],
                "color": colours[i % len(colours)],
            }
            for i, name in enumerate(names)
        ],
    }
    return {
        "names": names,
        "results": results,
        "deltas": result.get("deltas", {}),
        "chart": chart,
        "warnings": result.get("warnings", []),
        "model": result.get("model"),
        "cohort": result.get("cohort"),
        "recovery_days": [d for d in RECOVERY_DAYS if d in results[names[0]]["recovery"]],
    }


# ---------------------------------------------------------------------------------- errors


def _wants_html(request: Request[Any, Any, Any]) -> bool:
    return _is_htmx(request) or "text/html" in request.headers.get("accept", "")


def _json_handler(exc: Exception) -> Any:
    for kind in type(exc).__mro__:
        if kind in JSON_HANDLERS:
            return JSON_HANDLERS[kind]
    return JSON_HANDLERS[Exception]


def console_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if not _wants_html(request):
        return _json_handler(exc)(request, exc)
    if isinstance(exc, NotAuthorizedException):
        if _is_htmx(request):
            return Response("", status_code=401, headers={"HX-Redirect": "/console/login"})
        return Response("", status_code=303, headers={"Location": "/console/login"})
    errors: list[FieldError] = []
    if isinstance(exc, InvalidInput):
        status, message, errors = 422, str(exc.detail), exc.errors
    elif isinstance(exc, msgspec.ValidationError | BadCursor):
        status, message = 422, str(exc)
    elif isinstance(exc, HTTPException):
        status, message = exc.status_code, str(exc.detail)
    else:
        log.exception("unhandled console error", path=request.url.path, method=request.method)
        status, message = 500, "internal error"
    if _is_htmx(request):
        return render(
            request,
            "_flash.html",
            code=status,
            headers={"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"},
            message=message,
            errors=errors,
        )
    return render(request, "error.html", code=status, message=message, errors=errors)


def console_router(settings: Settings) -> Router:
    """The console's pages under /console, authenticated by session cookie or bearer."""
    return Router(
        path="/console",
        route_handlers=[
            home,
            login_page,
            login_submit,
            logout,
            portfolio_page,
            portfolio_trend,
            work_page,
            case_page,
            case_assign,
            case_note,
            case_close,
            call_outcome,
            dashboard_page,
            invoices_page,
            invoice_page,
            invoice_state,
            invoice_plan,
            policies_page,
            policy_page,
            policy_check,
            policy_save,
            policy_activate,
            policy_simulate,
            simulation_page,
        ],
        middleware=[
            DefineMiddleware(
                ConsoleAuthMiddleware,
                secret=settings.secret_key,
                failures=Throttle("auth_failures", settings.rate_limit_per_minute),
                exclude=["^/console/login$"],
            )
        ],
        # Every kind the API's handlers know, so the most specific one is always this one.
        exception_handlers=dict.fromkeys(JSON_HANDLERS, console_error),
        include_in_schema=False,
    )


def _plain_file_name(connection: Any, _: Any) -> None:
    """A static file's name is short and printable, or it is missing (a NUL or a name past
    the file system's length would fail in the open, as a 500)."""
    name = str(connection.path_params.get("file_path", ""))
    if len(name) > MAX_STATIC_NAME or CONTROL.search(name):
        raise NotFoundException("not found")


def console_static() -> Router:
    return create_static_files_router(
        path=STATIC_PATH,
        directories=[HERE / "static"],
        guards=[_plain_file_name],
        opt={"public": True},
        include_in_schema=False,
        name="console-files",
    )
