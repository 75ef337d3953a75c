"""Message texts from Jinja2 templates, per language, overridable per tenant.

Defaults ship in `templates/<language>/`: for each step kind a subject, a plain body (the
email's text and the letter) and an SMS; `interest.txt` explains the interest; `email.html`
lays the plain body out as HTML (it gets the body's paragraphs as escaped values, so the
wording lives in one place); `call.txt` is the phone script. A tenant overrides any of them by name (`sv/reminder.sms.txt`); the engine stores
the overrides and passes them in.

Why a sandbox for every template: tenant templates are user input. They render in Jinja2's
immutable sandbox (no attribute tricks to reach Python internals, no mutation), with a
bounded `range`, no loop inside a loop, a size limit on the source and on the output, so a
template can neither run code nor make a reminder run for minutes. Data never becomes
template source: debtor names are values, so "{{ 7*7 }}" in a name prints as typed.
StrictUndefined makes a misspelt field fail when the template is saved and previewed,
not print an empty string in a letter. Autoescape is on for `.html` only: escaping a
plain-text SMS would show "&amp;" to the debtor.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import msgspec
from jinja2 import (
    ChoiceLoader,
    DictLoader,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    nodes,
    select_autoescape,
)
from jinja2.runtime import Context, LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from backend.channels.amounts import format_amount, format_rate
from backend.channels.message import LANGUAGES, Message, check
from simulator.policy import ACTIONS

DEFAULTS = Path(__file__).parent / "templates"
PARTS = ("subject.txt", "body.txt", "sms.txt")
SHARED = ("interest.txt", "email.html", "call.txt")
MAX_SOURCE_CHARS = 20_000
MAX_OUTPUT_CHARS = 50_000
MAX_SUBJECT_CHARS = 200
MAX_SMS_CHARS = 918  # six concatenated GSM-7 segments
MAX_RANGE = 100
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


class TemplateProblem(ValueError):
    """A template that may not be used: unknown name, too large, unsafe or broken."""


def template_names() -> tuple[str, ...]:
    """Every name a tenant may override."""
    names = [f"{lang}/{kind}.{part}" for lang in LANGUAGES for kind in ACTIONS for part in PARTS]
    return (*names, *(f"{lang}/{shared}" for lang in LANGUAGES for shared in SHARED))


class Rendered(msgspec.Struct, frozen=True, kw_only=True):
    """Every text of one message, as the debtor would read it."""

    subject: str
    text: str
    html: str
    sms: str
    interest: str


def one_line(value: str, limit: int = MAX_SUBJECT_CHARS) -> str:
    """Control characters and line breaks to spaces, bounded: safe for a header or a title."""
    cleaned = " ".join(_CONTROL.sub(" ", value).split())
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1].rstrip() + "…"
    return cleaned


# Filters a template may use: none of them can make a text much longer than its input.
SAFE_FILTERS = (
    "abs", "capitalize", "count", "d", "default", "e", "escape", "first", "int", "join",
    "last", "length", "lower", "round", "string", "striptags", "title", "trim", "truncate",
    "upper", "wordcount",
)  # fmt: skip
SAFE_STR_METHODS = frozenset(
    {"upper", "lower", "title", "capitalize", "strip", "startswith", "endswith"}
)
SAFE_DICT_METHODS = frozenset({"get", "items", "keys", "values"})
MAX_REPEAT_CHARS = 5_000
MAX_EXPONENT = 64
MAX_POWER_BITS = 4_096


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox, narrowed: attributes only where a template needs them,
    and arithmetic that cannot build a gigabyte string or a number with a million digits
    (the sandbox alone allows `'x' * 10**9` and `'x'.center(10**9)`)."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, LoopContext):
            return not attr.startswith("_")
        if isinstance(obj, str):
            return attr in SAFE_STR_METHODS
        if isinstance(obj, dict):
            return attr in SAFE_DICT_METHODS
        return False

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float):
            base_bits = left.bit_length() if isinstance(left, int) else 64
            if abs(right) > MAX_EXPONENT or base_bits * abs(right) > MAX_POWER_BITS:
                raise TemplateProblem("an exponent too large for a template")
        if operator == "%" and isinstance(left, str):
            # "%s%s" % (a, a) doubles a string per step like `~` would: write {{ a }}{{ a }}
            raise TemplateProblem("string formatting with % is not allowed in a template")
        if (
            operator == "*"
            and isinstance(left, int)
            and isinstance(right, int)
            and left.bit_length() + right.bit_length() > MAX_POWER_BITS
        ):
            # Squaring a number again and again grows it without bound (a probe held a worker
            # for minutes with 22 squarings of 10**60).
            raise TemplateProblem("a number too large for a template")
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if (
                    isinstance(sequence, str | list | tuple)
                    and isinstance(times, int)
                    and len(sequence) * times > MAX_REPEAT_CHARS
                ):
                    raise TemplateProblem(
                        f"repetition longer than {MAX_REPEAT_CHARS} in a template"
                    )
        if (
            operator == "+"
            and isinstance(left, str | list | tuple)
            and isinstance(right, str | list | tuple)
            and len(left) + len(right) > MAX_OUTPUT_CHARS
        ):
            raise TemplateProblem(f"a value longer than {MAX_OUTPUT_CHARS} in a template")
        return super().call_binop(context, operator, left, right)


def _bounded_range(*args: int) -> range:
    result = range(*args)
    if len(result) > MAX_RANGE:
        raise TemplateProblem(f"range() of more than {MAX_RANGE} items in a template")
    return result


class Templates:
    """The default templates with one tenant's overrides on top."""

    def __init__(self, overrides: Mapping[str, str] | None = None) -> None:
        overrides = dict(overrides or {})
        allowed = set(template_names())
        for name, source in overrides.items():
            if name not in allowed:
                raise TemplateProblem(f"{name!r} is not a template name")
            if len(source) > MAX_SOURCE_CHARS:
                raise TemplateProblem(f"{name}: more than {MAX_SOURCE_CHARS} characters")
        self._env = _Sandbox(
            loader=ChoiceLoader([DictLoader(overrides), FileSystemLoader(DEFAULTS)]),
            undefined=StrictUndefined,
            autoescape=select_autoescape(enabled_extensions=("html",), default=False),
            keep_trailing_newline=False,
            auto_reload=False,
        )
        # Only a bounded range: no namespace() (state across loop turns), cycler, lipsum.
        self._env.globals = {"range": _bounded_range}
        self._env.filters = {name: self._env.filters[name] for name in SAFE_FILTERS}
        for name, source in overrides.items():
            _refuse_unsafe(name, self._parse(name, source))

    def _parse(self, name: str, source: str) -> nodes.Template:
        try:
            return self._env.parse(source, name=name)
        except TemplateError as exc:
            raise TemplateProblem(f"{name}: {exc}") from exc

    def render(self, name: str, context: Mapping[str, Any], limit: int = MAX_OUTPUT_CHARS) -> str:
        """One template's output; TemplateProblem when it fails or grows past `limit`."""
        try:
            chunks: list[str] = []
            size = 0
            for chunk in self._env.get_template(name).generate(context):
                size += len(chunk)
                if size > MAX_OUTPUT_CHARS:
                    raise TemplateProblem(f"{name}: output beyond {MAX_OUTPUT_CHARS} characters")
                chunks.append(chunk)
        except TemplateProblem:
            raise
        except (TemplateError, RecursionError, TypeError, ValueError, ArithmeticError) as exc:
            raise TemplateProblem(f"{name}: {type(exc).__name__}: {exc}") from exc
        text = "".join(chunks).strip()
        if len(text) > limit:
            # Cutting would drop what comes last (the payment reference, the dispute line).
            raise TemplateProblem(f"{name}: {len(text)} characters, at most {limit}")
        return text

    def render_message(self, message: Message) -> Rendered:
        """Every part of the message's kind, in its language."""
        context = message_context(message)
        prefix = f"{message.language}/"
        interest = self.render(prefix + "interest.txt", context)
        context["interest_text"] = one_line(interest, 2_000)
        base = f"{prefix}{message.kind}."
        subject = one_line(self.render(base + "subject.txt", context))
        text = self.render(base + "body.txt", context)
        context["subject"] = subject
        context["paragraphs"] = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
        return Rendered(
            subject=subject,
            text=text,
            html=self.render(prefix + "email.html", context),
            sms=self.render(base + "sms.txt", context, limit=MAX_SMS_CHARS),
            interest=context["interest_text"],
        )

    def render_call_script(self, message: Message) -> str:
        context = message_context(message)
        context["interest_text"] = one_line(
            self.render(f"{message.language}/interest.txt", context), 2_000
        )
        return self.render(f"{message.language}/call.txt", context, limit=5_000)


def templates_for(overrides: Mapping[str, str] | None = None) -> Templates:
    """The templates for one tenant's overrides, built once: compiling is the costly part of
    rendering, and a daily run renders the same few templates for every invoice."""
    return _cached(tuple(sorted((overrides or {}).items())))


@functools.lru_cache(maxsize=256)
def _cached(overrides: tuple[tuple[str, str], ...]) -> Templates:
    return Templates(dict(overrides))


# Nodes a tenant's template may not contain: `~` joins strings with no check on their length
# (doubling one 30 times is 10 GB), and an include or import runs another template inside
# this one, which multiplies loops across templates the one-template loop rule cannot see.
REFUSED_NODES: tuple[tuple[type[nodes.Node], str], ...] = (
    (nodes.Concat, "`~` joins are not allowed: write {{ a }}{{ b }}"),
    (nodes.Include, "includes are not allowed in tenant templates"),
    (nodes.Import, "imports are not allowed in tenant templates"),
    (nodes.FromImport, "imports are not allowed in tenant templates"),
    (nodes.Extends, "extends is not allowed in tenant templates"),
)


def _refuse_unsafe(name: str, tree: nodes.Template) -> None:
    """No loop inside a loop (a bounded range still multiplies), no recursive loops, none of
    `REFUSED_NODES`."""
    for node_type, why in REFUSED_NODES:
        if next(iter(tree.find_all(node_type)), None) is not None:
            raise TemplateProblem(f"{name}: {why}")
    for loop in tree.find_all(nodes.For):
        if loop.recursive or next(iter(loop.find_all(nodes.For)), None) is not None:
            raise TemplateProblem(f"{name}: nested or recursive loops are not allowed")
    if next(iter(tree.find_all(nodes.Macro)), None) is not None:
        raise TemplateProblem(f"{name}: macros are not allowed in tenant templates")


def message_context(message: Message) -> dict[str, Any]:
    """The values a template sees: display strings made here once, so every template (and
    every tenant's override) shows money and rates the same way."""
    lang, cur = message.language, message.currency

    def money(minor: int) -> str:
        return format_amount(minor, cur, lang)

    interest = message.interest
    return {
        "kind": message.kind,
        "channel": message.channel,
        "language": lang,
        "creditor": {
            "name": one_line(message.creditor.name),
            "org_number": one_line(message.creditor.org_number),
            "address": _lines(message.creditor.address),
        },
        "debtor": {
            "name": one_line(message.debtor.name),
            "address": _lines(message.debtor.address),
        },
        "invoice_number": one_line(message.invoice_number),
        "issue_date": message.issue_date.isoformat() if message.issue_date else "",
        "due_date": message.due_date.isoformat(),
        "sent_on": message.sent_on.isoformat(),
        "pay_by": message.pay_by.isoformat(),
        "currency": cur,
        "amount": money(message.amount),
        "fee": money(message.fee) if message.fee else "",
        "fees_before": money(message.fees_before) if message.fees_before else "",
        "compensation": money(message.compensation) if message.compensation else "",
        "total": money(message.total),
        "interest": {
            "mode": interest.mode,
            "known": interest.known,
            "accrued": money(interest.accrued) if interest.accrued is not None else "",
            "rate": format_rate(interest.annual_rate_bp, lang)
            if interest.annual_rate_bp is not None
            else "",
            "reference_rate": format_rate(interest.reference_rate_bp, lang)
            if interest.reference_rate_bp is not None
            else "",
            "margin": format_rate(interest.margin_bp, lang, percent_sign=False)
            if interest.margin_bp is not None
            else "",
            "from_date": interest.from_date.isoformat() if interest.from_date else "",
            "basis": money(interest.basis),
        },
        "payment": {
            "bankgiro": message.payment.bankgiro or "",
            "iban": message.payment.iban or "",
            "reference": message.payment.reference,
        },
        "dispute": {
            "email": message.dispute.email or "",
            "phone": one_line(message.dispute.phone or ""),
            "url": message.dispute.url or "",
        },
        "next_step": message.next_step,
    }


def _lines(lines: Iterable[str]) -> list[str]:
    return [line for line in (one_line(raw) for raw in lines) if line]


def preview(message: Message, overrides: Mapping[str, str] | None = None) -> Rendered:
    """What the debtor would get for this message, rendered without sending anything.

    Checks the message first, so a preview fails exactly where sending would.
    """
    return templates_for(overrides).render_message(check(message))
