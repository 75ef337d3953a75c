"""The console's words in Swedish and English, and how each language writes money and days.

One table, key → (sv, en): a page asks `t("outstanding")`. A key missing here shows as the
key itself (a test walks the templates for keys the table lacks).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from simulator.currency import minor_unit_exponent

LANGUAGES = ("sv", "en")
DEFAULT = "sv"
COOKIE = "kravlab_lang"

TEXT: dict[str, tuple[str, str]] = {
    "app": ("kravlab konsol", "kravlab console"),
    "login": ("Logga in", "Log in"),
    "logout": ("Logga ut", "Log out"),
    "email": ("E-post", "Email"),
    "password": ("Lösenord", "Password"),
    "wrong_login": ("Fel e-post eller lösenord.", "Wrong email or password."),
    "portfolio": ("Portfölj", "Portfolio"),
    "work": ("Ärenden och samtal", "Cases and calls"),
    "dashboard": ("Översikt", "Dashboard"),
    "invoices": ("Fakturor", "Invoices"),
    "invoice": ("Faktura", "Invoice"),
    "policies": ("Kreditpolicyer", "Credit policies"),
    "client": ("Klient", "Client"),
    "clients": ("Klienter", "Clients"),
    "outstanding": ("Utestående", "Outstanding"),
    "overdue": ("Förfallet", "Overdue"),
    "not_due": ("Ej förfallet", "Not due"),
    "d1_30": ("1–30 dagar", "1–30 days"),
    "d31_60": ("31–60 dagar", "31–60 days"),
    "d61_90": ("61–90 dagar", "61–90 days"),
    "d90_plus": ("Över 90 dagar", "Over 90 days"),
    "dso": ("DSO (dagar)", "DSO (days)"),
    "days_beyond_terms": ("Dagar efter villkor", "Days beyond terms"),
    "dso_method": ("Metod", "Method"),
    "open_cases": ("Öppna ärenden", "Open cases"),
    "escalations_30d": ("Eskaleringar 30 d", "Escalations 30 d"),
    "fees_12m": ("Avgifter 12 mån", "Fees 12 months"),
    "live_policy": ("Gällande policy", "Live policy"),
    "alerts": ("Varningar", "Alerts"),
    "none": ("ingen", "none"),
    "search_clients": ("Sök klient", "Search clients"),
    "only_alerts": ("Bara med varningar", "Only with alerts"),
    "trend": ("Utveckling per månad", "Monthly trend"),
    "recovery": ("Återvunnet, senaste kohorter", "Recovery, recent cohorts"),
    "recovery_help": (
        "Andel av beloppet som betalats dag 0, 30, 60 och 90 efter förfallodagen, per "
        "förfallomånad (de senaste sex; mörkast är nyast)",
        "Share of the amount paid by day 0, 30, 60 and 90 after due, per due month (the "
        "last six; darkest is newest)",
    ),
    "cohorts": ("Kohorter", "Cohorts"),
    "due_month": ("Förfallomånad", "Due month"),
    "cohort_amount": ("Belopp", "Amount"),
    "day": ("Dag", "Day"),
    "invoiced": ("Fakturerat", "Invoiced"),
    "cash_in": ("Inbetalt", "Cash in"),
    "fees": ("Avgifter", "Fees"),
    "total": ("Totalt", "Total"),
    "ageing": ("Åldersfördelning", "Ageing"),
    "cash_in_curve": ("Inbetalningar, 90 dagar", "Cash in, 90 days"),
    "cumulative": ("Ackumulerat", "Cumulative"),
    "per_day": ("Per dag", "Per day"),
    "recent_contacts": ("Senaste kontakter", "Recent contacts"),
    "unmatched": ("Omatchade betalningar", "Unmatched payments"),
    "held": ("Pausade och bestridda", "Paused and disputed"),
    "paused": ("Pausad", "Paused"),
    "disputed": ("Bestridd", "Disputed"),
    "date": ("Datum", "Date"),
    "action": ("Åtgärd", "Action"),
    "channel": ("Kanal", "Channel"),
    "status": ("Status", "Status"),
    "amount": ("Belopp", "Amount"),
    "reference": ("Referens", "Reference"),
    "debtor": ("Gäldenär", "Debtor"),
    "due_date": ("Förfallodag", "Due date"),
    "issue_date": ("Fakturadatum", "Issue date"),
    "paid": ("Betalt", "Paid"),
    "nothing": ("Inget att visa.", "Nothing to show."),
    "cases": ("Inkassoärenden", "Collection cases"),
    "calls": ("Samtal att ringa", "Calls to make"),
    "opened": ("Öppnat", "Opened"),
    "assignee": ("Handläggare", "Assignee"),
    "unassigned": ("ingen", "nobody"),
    "assign_me": ("Ta ärendet", "Take the case"),
    "unassign": ("Släpp ärendet", "Release the case"),
    "notes": ("Anteckningar", "Notes"),
    "add_note": ("Lägg till anteckning", "Add note"),
    "close_case": ("Stäng ärendet", "Close the case"),
    "outcome": ("Utfall", "Outcome"),
    "outcome_paid": ("Betald", "Paid"),
    "outcome_plan": ("Avbetalningsplan", "Payment plan"),
    "outcome_written_off": ("Avskriven", "Written off"),
    "outcome_enforcement": ("Till Kronofogden", "Sent to enforcement"),
    "call_reached": ("Nådd", "Reached"),
    "call_promise_to_pay": ("Betalningslöfte", "Promise to pay"),
    "call_dispute": ("Bestrider", "Disputes"),
    "call_no_answer": ("Inget svar", "No answer"),
    "promised_date": ("Lovat datum", "Promised date"),
    "note": ("Anteckning", "Note"),
    "record": ("Spara", "Record"),
    "recorded": ("Sparat.", "Recorded."),
    "phone": ("Telefon", "Phone"),
    "timeline": ("Händelser", "Timeline"),
    "pause": ("Pausa", "Pause"),
    "resume": ("Återuppta", "Resume"),
    "dispute": ("Bestrid", "Dispute"),
    "resolve": ("Lös bestridande", "Resolve dispute"),
    "reason": ("Anledning", "Reason"),
    "until": ("Till och med", "Until"),
    "payment_plan": ("Avbetalningsplan", "Payment plan"),
    "installments": ("Antal delbetalningar", "Instalments"),
    "first_due": ("Första förfallodag", "First due"),
    "interval_days": ("Dagar mellan", "Days between"),
    "create_plan": ("Skapa plan", "Create plan"),
    "timeline_payment": ("Betalning", "Payment"),
    "timeline_contact": ("Kontakt", "Contact"),
    "timeline_pause": ("Pausad", "Paused"),
    "timeline_resume": ("Återupptagen", "Resumed"),
    "timeline_dispute": ("Bestriden", "Disputed"),
    "timeline_resolve": ("Bestridande löst", "Dispute resolved"),
    "timeline_plan": ("Avbetalningsplan", "Payment plan"),
    "interest": ("Ränta", "Interest"),
    "unknown": ("okänd", "unknown"),
    "version": ("Version", "Version"),
    "versions": ("Versioner", "Versions"),
    "draft": ("utkast", "draft"),
    "live": ("gällande", "live"),
    "retired": ("avslutad", "retired"),
    "activate": ("Aktivera", "Activate"),
    "edit_draft": ("Redigera som nytt utkast", "Edit as a new draft"),
    "new_policy": ("Ny policy", "New policy"),
    "save_draft": ("Spara utkast", "Save draft"),
    "rules_ok": ("Alla regler uppfylls.", "Every rule passes."),
    "rules_fail": ("Regler som inte uppfylls:", "Rules not met:"),
    "not_json": ("Inte giltig JSON", "Not valid JSON"),
    "steps": ("Steg", "Steps"),
    "segment": ("Segment", "Segment"),
    "open": ("Öppna", "Open"),
    "search_invoice": ("Fakturanummer", "Invoice number"),
    "filter": ("Filtrera", "Filter"),
    "all": ("alla", "all"),
    "next_page": ("Nästa sida", "Next page"),
    "error": ("Något gick fel", "Something went wrong"),
    "not_found": ("Hittades inte", "Not found"),
    "forbidden": ("Du har inte behörighet till detta", "You may not do this"),
    "model_fitted_at": ("Modell anpassad", "Model fitted"),
    "last_simulation_at": ("Senaste simulering", "Last simulation"),
    "language": ("English", "Svenska"),
    "as_of": ("per", "as of"),
    "whatif": ("Vad händer om", "What-if"),
    "month": ("Månad", "Month"),
    "days": ("dagar", "days"),
    "simulate": ("Simulera mot gällande", "Simulate against live"),
    "sim_running": ("Simuleringen körs…", "The simulation is running…"),
    "sim_failed": ("Simuleringen misslyckades", "The simulation failed"),
    "sim_cancelled": ("Simuleringen avbröts", "The simulation was cancelled"),
    "sim_cohort": ("Underlag", "Cohort"),
    "sim_horizon": ("horisont", "horizon"),
    "sim_cash_curve": (
        "Inbetalt av fakturerat, med 90 %-intervall",
        "Cash in of invoiced, with 90 % bands",
    ),
    "sim_recovery": ("Inbetalt efter", "Recovered after"),
    "sim_contacts": ("Kontakter", "Contacts"),
    "sim_channel_cost": ("Kanalkostnad", "Channel cost"),
    "sim_fee_income": ("Avgiftsintäkter", "Fee income"),
    "sim_interest_income": ("Ränteintäkter", "Interest income"),
    "sim_escalations": ("Eskaleringar", "Escalations"),
    "sim_model": ("Modellens träffsäkerhet", "The model's measured accuracy"),
    "sim_mae": ("Medelfel i backtest", "Backtest mean error"),
    "sim_coverage": ("Täckning av 90 %-intervall", "90 % interval coverage"),
    "sim_skill": ("Förbättring mot naiv prognos", "Skill over the naive forecast"),
    "sim_no_skill": ("slår inte den naiva prognosen", "does not beat the naive forecast"),
    "sim_warnings": ("Förbehåll", "Warnings"),
    "sim_no_backtest": (
        "inget backtest: historiken räcker inte (se förbehållen)",
        "no backtest: the history is too short (see the warnings)",
    ),
    "alert_webhooks_failing": ("Webhooks fallerar", "Webhooks failing"),
    "alert_channel_failing": ("Kanal fallerar", "Channel failing"),
    "alert_interest_unknown": ("Ränta okänd", "Interest unknown"),
    "alert_no_live_policy": ("Ingen gällande policy", "No live policy"),
    "alert_model_missing": ("Ingen modell", "No model"),
    "alert_model_stale": ("Gammal modell", "Stale model"),
    "alert_model_no_skill": ("Modellen slår inte naiv prognos", "Model not beating naive"),
    "model_accuracy": ("Modellens fel (pp)", "Model error (pp)"),
    "alert_reference_rate_missing": ("Referensränta saknas", "Reference rate missing"),
    "reference_rate_missing_text": (
        "Referensräntan för halvåret från {date} saknas: dröjsmålsräntan för dess dagar är "
        "okänd tills en administratör på byrån lägger in den",
        "The reference rate for the half-year from {date} is missing: late interest for its "
        "days is unknown until an agency admin adds it",
    ),
}

STATUS_KEYS = {
    "open": ("öppen", "open"),
    "overdue": ("förfallen", "overdue"),
    "paid": ("betald", "paid"),
    "paused": ("pausad", "paused"),
    "disputed": ("bestridd", "disputed"),
    "planned": ("avbetalning", "on a plan"),
    "in_collection": ("inkasso", "in collection"),
    "written_off": ("avskriven", "written off"),
    "closed": ("stängd", "closed"),
}


def pick(lang: str | None) -> str:
    return lang if lang in LANGUAGES else DEFAULT


def translator(lang: str) -> Callable[[str], str]:
    index = LANGUAGES.index(pick(lang))

    def t(key: str) -> str:
        words = TEXT.get(key) or STATUS_KEYS.get(key)
        return words[index] if words else key

    return t


def money(minor: int | None, currency: str, lang: str, decimals: bool = False) -> str:
    """`1 234 kr` / `SEK 1,234` (whole units) or with öre, from integer minor units in the
    currency's own ISO 4217 exponent (JPY has none, BHD three)."""
    if minor is None:
        return "–"
    exponent = minor_unit_exponent(currency)
    sign = "−" if minor < 0 else ""
    whole, fraction = divmod(abs(minor), 10**exponent)
    if not decimals and exponent and fraction * 2 >= 10**exponent:
        whole += 1
    shown = decimals and exponent > 0
    grouped = f"{whole:,}"
    if pick(lang) == "sv":
        text = grouped.replace(",", "\u00a0") + (f",{fraction:0{exponent}d}" if shown else "")
        unit = "kr" if currency == "SEK" else currency
        return f"{sign}{text}\u00a0{unit}"
    text = grouped + (f".{fraction:0{exponent}d}" if shown else "")
    return f"{sign}{currency}\u00a0{text}"


def number(value: float | None, lang: str) -> str:
    if value is None:
        return "–"
    text = f"{value:,.1f}"
    if pick(lang) == "sv":
        return text.replace(",", "\u00a0").replace(".", ",")
    return text


def day(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)[:16].replace("T", " ")
