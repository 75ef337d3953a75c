"""Email contacts through SMTP: plain text and HTML alternatives, the letter as a PDF.

smtplib runs in a worker thread (`asyncio.to_thread`): one contact is one short SMTP
session, so an async client would add a dependency without saving anything, and the event
loop still never blocks. Headers are built with the stdlib's `EmailMessage` from values
that went through `one_line` first, so a debtor called "x\\r\\nBcc: victim@example.com"
stays a name in a quoted display name and never adds a header.

Outcomes: a 2xx from the server is `sent` (with our Message-ID as the provider id); a
refused recipient or message with a 5xx is `permanent`; 4xx answers, a server that is down,
a timeout, a TLS or login failure are `retryable` (they are faults of the channel, not of
the message, and must delay the contact, never lose it).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import msgspec

from backend.channels import SendResult, permanent, retryable, sent
from backend.channels.letters import FontMissing, render_letter
from backend.channels.message import Message, MessageError, check
from backend.channels.templates import Rendered, TemplateProblem, one_line, templates_for
from backend.settings import Settings

CHANNEL = "email"


class SmtpConfig(msgspec.Struct, frozen=True, kw_only=True):
    host: str
    port: int
    tls: str = "none"  # none | starttls | tls
    user: str = ""
    password: str = msgspec.field(default="")
    sender: str
    timeout: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig:
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            tls=settings.smtp_tls,
            user=settings.smtp_user,
            password=settings.smtp_password,
            sender=settings.smtp_sender,
            timeout=settings.channel_timeout_seconds,
        )

    def __repr__(self) -> str:  # the password never reaches a log line
        return f"SmtpConfig(host={self.host!r}, port={self.port}, tls={self.tls!r})"


class Attachment(msgspec.Struct, frozen=True, kw_only=True):
    filename: str
    content: bytes
    mime: str = "application/pdf"


def attachment_name(message: Message) -> str:
    """A file name a mail client shows and saves safely: no path, no quotes, bounded."""
    number = re.sub(r"[^A-Za-z0-9._-]+", "_", message.invoice_number)[:60].strip("._") or "invoice"
    return f"{message.kind.replace('_', '-')}-{number}.pdf"


def build_email(
    message: Message,
    rendered: Rendered,
    sender: str,
    attachments: Sequence[Attachment],
) -> EmailMessage:
    """The MIME message: headers from single-line, bounded values only."""
    assert message.debtor.email is not None  # check() demands it for email
    email = EmailMessage()
    email["Subject"] = one_line(rendered.subject)
    email["From"] = Address(display_name=one_line(message.creditor.name, 100), addr_spec=sender)
    email["To"] = Address(
        display_name=one_line(message.debtor.name, 100), addr_spec=message.debtor.email
    )
    if message.dispute.email:
        email["Reply-To"] = Address(addr_spec=message.dispute.email)
    domain = sender.rsplit("@", 1)[-1] or "localhost"
    email["Message-ID"] = make_msgid(domain=domain)
    email["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    email.set_content(rendered.text)
    email.add_alternative(rendered.html, subtype="html")
    for attachment in attachments:
        maintype, subtype = attachment.mime.split("/", 1)
        email.add_attachment(
            attachment.content,
            maintype=maintype,
            subtype=subtype,
            filename=attachment.filename,
        )
    return email


class EmailChannel:
    """Sends one message as an email; never raises for a refused or undeliverable one."""

    name = CHANNEL

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    @classmethod
    def from_settings(cls, settings: Settings) -> EmailChannel:
        return cls(SmtpConfig.from_settings(settings))

    async def send(
        self,
        message: Message,
        *,
        overrides: Mapping[str, str] | None = None,
        attachments: Sequence[Attachment] | None = None,
        reference: str | None = None,
    ) -> SendResult:
        """`attachments` default to the letter as PDF; `reference` (the engine's step id)
        goes into an X-Kravlab-Reference header so a bounce can be traced to its step."""
        try:
            message = check(message)
            templates = templates_for(overrides)
            rendered = templates.render_message(message)
            if attachments is None:
                pdf = render_letter(message, templates=templates)
                attachments = [Attachment(filename=attachment_name(message), content=pdf)]
            email = build_email(message, rendered, self.config.sender, attachments)
            if reference:
                email["X-Kravlab-Reference"] = one_line(reference, 100)
        except (MessageError, TemplateProblem, ValueError) as exc:
            return permanent(CHANNEL, f"not sendable: {exc}")
        except FontMissing as exc:
            return retryable(CHANNEL, str(exc))
        return await asyncio.to_thread(self._deliver, email)

    def _deliver(self, email: EmailMessage) -> SendResult:
        config = self.config
        try:
            if config.tls == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    config.host,
                    config.port,
                    timeout=config.timeout,
                    context=ssl.create_default_context(),
                )
            else:
                smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
            with smtp:
                smtp.ehlo()
                if config.tls == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if config.user:
                    smtp.login(config.user, config.password)
                refused = smtp.send_message(email, from_addr=config.sender)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            text = f"recipient refused: {codes}"
            return (
                permanent(CHANNEL, text)
                if all(c >= 500 for c in codes)
                else retryable(CHANNEL, text)
            )
        except smtplib.SMTPAuthenticationError as exc:
            return retryable(CHANNEL, f"SMTP login failed ({exc.smtp_code}): check the settings")
        except smtplib.SMTPResponseException as exc:
            text = f"SMTP {exc.smtp_code}: {_decode(exc.smtp_error)}"
            return permanent(CHANNEL, text) if exc.smtp_code >= 500 else retryable(CHANNEL, text)
        except (smtplib.SMTPException, OSError) as exc:  # down, timeout, TLS, disconnected
            return retryable(CHANNEL, f"{type(exc).__name__}: {exc}")
        if refused:
            return permanent(CHANNEL, f"recipient refused: {refused}")
        return sent(CHANNEL, email["Message-ID"])


def _decode(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
