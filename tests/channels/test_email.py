"""Email through a real SMTP server (aiosmtpd on a free port): what arrived, and how every
kind of failure is reported."""

from __future__ import annotations

import io
import shutil
import ssl
import subprocess
from pathlib import Path

import msgspec
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pypdf import PdfReader

from backend.channels.email import EmailChannel, SmtpConfig
from backend.channels.message import Debtor
from tests.channels.messages import message, notice
from tests.channels.servers import MailSink, free_port


@pytest.fixture
def smtp():
    sink = MailSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield sink, controller.port
    finally:
        controller.stop()


def channel(port: int, **changes) -> EmailChannel:
    config = SmtpConfig(host="127.0.0.1", port=port, sender="krav@kravlab.test", timeout=5)
    return EmailChannel(msgspec.structs.replace(config, **changes))


def pdf_text(data: bytes) -> str:
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    return " ".join(text.replace("\u00a0", " ").split())


async def test_a_reminder_arrives_with_subject_body_html_and_the_letter_attached(smtp):
    sink, port = smtp
    result = await channel(port).send(message(), reference="step-17")
    assert result.status == "sent" and result.provider_id
    [received] = sink.received
    assert received.mail_from == "krav@kravlab.test"
    assert received.rcpt_tos == ["marta@example.se"]
    email = received.email
    assert email["Subject"] == "Påminnelse: faktura F-2026-0042 från Åkesson & Öberg AB"
    assert email["Message-ID"] == result.provider_id
    assert email["X-Kravlab-Reference"] == "step-17"
    assert email["Reply-To"] == "fragor@akesson.se"
    assert email["To"].addresses[0].display_name == "Märta Ångström"
    text = email.get_body(preferencelist=("plain",)).get_content().replace("\u00a0", " ")
    assert "faktura F-2026-0042" in text and "förföll till betalning 2026-02-01" in text
    assert "Att betala: 1 304,65 kr" in text and "bankgiro 5555-1234" in text
    html = email.get_body(preferencelist=("html",)).get_content()
    assert "Åkesson &amp; Öberg AB" in html  # escaped in HTML, not in the text
    [attachment] = list(email.iter_attachments())
    assert attachment.get_filename() == "reminder-F-2026-0042.pdf"
    assert attachment.get_content_type() == "application/pdf"
    letter = pdf_text(attachment.get_content())
    assert "Påminnelse" in letter and "F-2026-0042" in letter and "1 234,50 kr" in letter


async def test_an_english_collection_notice_by_email(smtp):
    sink, port = smtp
    result = await channel(port).send(notice(channel="email", language="en"))
    assert result.sent
    email = sink.received[0].email
    assert email["Subject"] == "Collection notice: invoice F-2026-0042 from Åkesson & Öberg AB"
    text = email.get_body(preferencelist=("plain",)).get_content().replace("\u00a0", " ")
    assert "Pay by 2026-03-10" in text and "SEK 1,484.65" in text
    [attachment] = list(email.iter_attachments())
    assert attachment.get_filename() == "collection-notice-F-2026-0042.pdf"
    assert "Collection notice" in pdf_text(attachment.get_content())


async def test_a_hostile_name_and_invoice_number_stay_inside_their_headers(smtp):
    """CR/LF in a debtor's name or an invoice number must not add a Bcc or a second body."""
    sink, port = smtp
    hostile = message(
        debtor=Debtor(
            name='Eve\r\nBcc: victim@example.com\r\n\r\n<b>"x"</b>',
            email="eve@example.se",
            address=("Gatan 1",),
        ),
        invoice_number="F-1\nBcc: victim2@example.com",
    )
    result = await channel(port).send(hostile)
    assert result.sent
    [received] = sink.received
    assert received.rcpt_tos == ["eve@example.se"]
    email = received.email
    assert email["Bcc"] is None
    assert "\n" not in email["Subject"] and "victim2@example.com" in email["Subject"]
    assert email["To"].addresses[0].addr_spec == "eve@example.se"
    assert len(email["To"].addresses) == 1
    html = email.get_body(preferencelist=("html",)).get_content()
    assert "<b>" not in html and "&lt;b&gt;" in html


async def test_a_refused_recipient_is_permanent_and_a_busy_one_retryable(smtp):
    _, port = smtp
    refused = message(debtor=Debtor(name="R", email="refused@example.se"))
    busy = message(debtor=Debtor(name="B", email="busy@example.se"))
    first = await channel(port).send(refused)
    second = await channel(port).send(busy)
    assert (first.status, second.status) == ("permanent", "retryable")
    assert "550" in (first.reason or "") and "451" in (second.reason or "")


async def test_a_server_that_is_down_is_a_retryable_failure():
    result = await channel(free_port()).send(message())
    assert result.status == "retryable" and not result.sent


async def test_a_message_without_an_address_is_refused_not_raised(smtp):
    sink, port = smtp
    result = await channel(port).send(message(debtor=Debtor(name="N", address=("Gatan 1",))))
    assert result.status == "permanent" and "debtor.email" in (result.reason or "")
    assert sink.received == []


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_starttls_and_login_with_the_configured_credentials(tmp_path, monkeypatch):
    """STARTTLS verifies the server's certificate (trusted here through SSL_CERT_FILE) and
    AUTH happens only inside TLS; a wrong password is retryable (a settings fault)."""
    cert, key = _self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    logins: list[tuple[str, str]] = []

    def authenticate(server, session, envelope, mechanism, data):
        assert isinstance(data, LoginPassword) and session.ssl is not None
        logins.append((data.login.decode(), data.password.decode()))
        return AuthResult(success=data.password == b"s3cret")

    sink = MailSink()
    controller = Controller(
        sink,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        authenticator=authenticate,
    )
    controller.start()
    try:
        good = channel(controller.port, tls="starttls", user="krav", password="s3cret")
        assert (await good.send(message())).sent
        bad = channel(controller.port, tls="starttls", user="krav", password="wrong", timeout=1)
        assert (await bad.send(message())).status == "retryable"
        plain = channel(controller.port, user="krav", password="s3cret")
        assert (await plain.send(message())).status != "sent"  # no AUTH without TLS
    finally:
        controller.stop()
    assert logins[:2] == [("krav", "s3cret"), ("krav", "wrong")]
    assert len(sink.received) == 1


async def test_implicit_tls_refuses_an_untrusted_certificate_then_sends_once_trusted(
    tmp_path, monkeypatch
):
    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    sink = MailSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port(), ssl_context=context)
    controller.start()
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "nothing-trusted.pem"))
        untrusted = await channel(controller.port, tls="tls").send(message())
        assert untrusted.status == "retryable" and "CERTIFICATE_VERIFY_FAILED" in (
            untrusted.reason or ""
        )
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        assert (await channel(controller.port, tls="tls").send(message())).sent
    finally:
        controller.stop()
    assert len(sink.received) == 1
