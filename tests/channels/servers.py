"""Real servers the channels talk to in tests: an aiosmtpd SMTP server and an HTTP SMS
gateway (http.server in a thread), each on a free port, each recording what arrived."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    email: EmailMessage


class MailSink:
    """aiosmtpd handler: accepts mail, refuses recipients whose local part says so
    (`refused@` 550, `busy@` 451), and keeps every message it accepted."""

    def __init__(self) -> None:
        self.received: list[Received] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0]
        if local == "refused":
            return "550 5.1.1 no such user"
        if local == "busy":
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted"


@dataclass
class GatewayRequest:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Gateway:
    """An SMS gateway on 127.0.0.1: `answers` says what each request gets, in turn (the last
    one repeats): a status code, or "hang" to answer after `hang_seconds`."""

    answers: list[int | str] = field(default_factory=lambda: [200])
    hang_seconds: float = 2.0
    requests: list[GatewayRequest] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/sms"

    def next_answer(self) -> int | str:
        index = min(len(self.requests) - 1, len(self.answers) - 1)
        return self.answers[index]


def start_gateway(gateway: Gateway) -> Callable[[], None]:
    """Serve `gateway` in a thread; returns the function that stops it."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            with lock:
                gateway.requests.append(
                    GatewayRequest(self.path, dict(self.headers.items()), json.loads(raw))
                )
                answer = gateway.next_answer()
                number = len(gateway.requests)
            if answer == "hang":
                time.sleep(gateway.hang_seconds)
                answer = 200
            assert isinstance(answer, int)
            payload = (
                json.dumps({"id": f"sms-{number}"})
                if answer < 300
                else json.dumps({"error": f"answer {answer}"})
            ).encode()
            self.send_response(answer)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            # The client may have given up waiting (the timeout test).
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    gateway.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return stop
