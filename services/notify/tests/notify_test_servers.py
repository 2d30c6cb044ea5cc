"""Real servers notify's delivery tests start: an SMS gateway, a webhook receiver, an SMTP server.

They listen on 127.0.0.1 on a free port, record what reaches them, and can be told
how to answer (a script of status codes) and what to do on a request (a hook, used
to kill the delivery process between a send and its recording).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from servicekit.localsystem import free_port


@dataclass
class Received:
    """One request as the server saw it."""

    headers: dict[str, str]
    body: bytes
    status: int
    signature_ok: bool | None = None
    # As the request line names it: a path, or the absolute URL a proxy is asked for.
    target: str = ""

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """An SMS gateway or a webhook receiver: answers from ``script``, then ``default``.

    It honours ``Idempotency-Key`` as a good gateway does: a key it accepted before is
    answered 200 again without counting as a new message (``accepted``). With a
    ``secret`` it verifies the webhook's HMAC signature on every request.
    """

    script: list[int] = field(default_factory=list)
    default: int = 200
    secret: str | None = None
    on_request: Callable[[Received], None] | None = None
    # (certificate file, key file): answer HTTPS with them instead of HTTP.
    tls: tuple[str, str] | None = None
    requests: list[Received] = field(default_factory=list)
    accepted: dict[str, Received] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                status = receiver._answer(dict(self.headers), body, self.path)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the client died mid-request (the kill -9 tests)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            # A client refusing the certificate fails its accept, which the server ignores.
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}/messages"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def _answer(self, headers: dict[str, str], body: bytes, target: str = "") -> int:
        with self._lock:
            key = headers.get("Idempotency-Key")
            if key and key in self.accepted:
                status = 200
            else:
                status = self.script.pop(0) if self.script else self.default
            received = Received(headers, body, status, self._verify(headers, body), target)
            self.requests.append(received)
            if status < 300 and key and key not in self.accepted:
                self.accepted[key] = received
        if self.on_request is not None:
            self.on_request(received)
        return status

    def _verify(self, headers: dict[str, str], body: bytes) -> bool | None:
        if self.secret is None:
            return None
        timestamp = headers.get("X-NightTalk-Timestamp", "")
        expected = hmac.new(
            self.secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        return hmac.compare_digest(headers.get("X-NightTalk-Signature", ""), "sha256=" + expected)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpServer:
    """An aiosmtpd server keeping every message; answers from ``script`` (e.g. '451 ...')."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.script: list[str] = []
        self.on_message: Callable[[Any], None] | None = None
        # Set: a message is kept at once but answered only once this is set (a server
        # slower to answer than the client waits), or when the server closes.
        self.answer_after: threading.Event | None = None
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        if self.script:
            return self.script.pop(0)
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append(message)
        if self.on_message is not None:
            self.on_message(message)
        if self.answer_after is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.answer_after.wait)
        return "250 Message accepted for delivery"

    def close(self) -> None:
        if self.answer_after is not None:
            self.answer_after.set()
        self.controller.stop()


SECRET = "test-webhook-secret"
PARTNER = "lw-guokeng"
# 11:00 in Beijing: outside quiet hours.
DAYTIME = dt.datetime(2026, 12, 21, 3, 0, tzinfo=dt.UTC)


class Clock:
    """A clock the test moves by hand, so backoff needs no sleeping."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def self_signed_certificate(folder: Path) -> tuple[str, str]:
    """Write a certificate for 127.0.0.1, signed by its own key; return (cert, key) files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nighttalk test gateway")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "gateway.pem", folder / "gateway.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_file), str(key_file)
