"""The channels a notification goes out on: SMS gateway, SMTP, signed webhook, printed letter.

Each sender raises ``TemporaryFailure`` (worth retrying: a gateway 5xx or 429, an
SMTP 4xx, a refused connection, a timeout before the message was handed over) or
``PermanentFailure`` (a gateway 4xx, an SMTP 5xx, no address): the worker retries the
first with backoff and gives up on the second at once. When the message was handed
over (the HTTP request was written, the SMTP server said 354 to DATA) and then no
answer came (a read timeout, a dropped connection), it may have gone out: a channel
that tells duplicates raises ``TemporaryFailure`` and is tried again under the same
key; one that cannot raises ``OutcomeUnknown`` (a permanent failure) instead of
risking a second message, as the worker does with a send a crash hid.

Whether a channel can tell a duplicate (``dedupes``) decides what a restart does
with a send whose outcome a crash hid: the SMS gateway and the webhook receive the
notification's id as ``Idempotency-Key`` and may be sent again; SMTP has no such
key (the ``Message-ID`` helps a mail client, not the server), so an e-mail whose
outcome is unknown is never resent automatically. A letter is rendered and stored
in the same transaction that records it delivered, so it is exactly once.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import os
import smtplib
import ssl
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Protocol

import urllib3
from environs import env
from marshmallow.validate import Range

from notify import models
from servicekit.http_clients import HttpClients


class TemporaryFailure(Exception):
    """A failure that a later attempt may not meet."""


class PermanentFailure(Exception):
    """A failure that will not go away by trying again."""


class OutcomeUnknown(PermanentFailure):
    """The message was handed over and no answer came, on a channel that cannot tell a
    duplicate: it may have gone out, so it is not sent again automatically."""

    def __init__(self, what: str, exc: BaseException) -> None:
        super().__init__(
            f"{what}: no answer after the message was handed over ({type(exc).__name__}); "
            "it may have gone out, and this channel cannot tell a duplicate: not resent "
            "automatically; check with the recipient, then retry by hand"
        )


# The failures of an HTTP request that come before anything of it was written: the
# connection (or the proxy, or TLS with a certificate it refused) never came about. Any
# other (a read timeout, a connection dropped or reset, a TLS error past the handshake)
# may come after the gateway had the whole request.
_NOT_SENT = (urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.ProxyError)


def _unanswered(exc: urllib3.exceptions.HTTPError, what: str, dedupes: bool) -> Exception:
    """Return the failure to raise for an HTTP request that got no answer."""
    summary = f"{what} unreachable: {type(exc).__name__}"
    if dedupes or isinstance(exc, _NOT_SENT) or _refused_certificate(exc):
        return TemporaryFailure(summary)
    return OutcomeUnknown(what, exc)


def _refused_certificate(exc: urllib3.exceptions.HTTPError) -> bool:
    # urllib3 wraps the ssl module's error: a certificate is refused in the handshake.
    return isinstance(exc, urllib3.exceptions.SSLError) and any(
        isinstance(inner, (ssl.SSLCertVerificationError, ssl.CertificateError))
        for inner in (*exc.args, exc.__cause__, exc.__context__)
    )


@dataclass(frozen=True)
class Outgoing:
    """One message ready to send: holds an address in clear, so it prints redacted."""

    notification_id: str
    case_id: str
    case_number: str
    kind: str
    channel: str
    recipient_kind: str
    address: str | None
    language: str
    subject: str | None
    body: str
    payload: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Outgoing(id={self.notification_id!r}, channel={self.channel!r}, <redacted>)"


@dataclass(frozen=True)
class Artifact:
    """What a send leaves to keep with its record: a letter's HTML and PDF."""

    html: str
    pdf: bytes


class Channel(Protocol):
    dedupes: bool

    def send(self, message: Outgoing) -> Artifact | None: ...


# Settings are read with environs: a bad value raises ValueError naming its variable.
POSITIVE = Range(min=0, min_inclusive=False)


def _env_flag(name: str, default: bool) -> bool:
    # true/false, yes/no, on/off, 1/0; anything else is refused rather than read as "no".
    return env.bool(name, default)


def _http_outcome(status: int, what: str) -> None:
    if status < 300:
        return
    summary = f"{what} answered HTTP {status}"
    # 408 and 429 say "not now"; any other 4xx says the request itself is wrong (as does a
    # redirect: a message is never re-posted elsewhere on a gateway's word).
    if status >= 500 or status in (408, 429):
        raise TemporaryFailure(summary)
    raise PermanentFailure(summary)


@dataclass
class SmsGateway:
    """POST ``{"to", "text"}`` to an HTTP SMS gateway (``NIGHTTALK_SMS_URL``, ``_TOKEN``).

    ``dedupes`` (``NIGHTTALK_SMS_DEDUPES``, off by default) says the gateway honours
    ``Idempotency-Key``; only then is a send hidden by a crash tried again.
    """

    url: str | None
    token: str | None = None
    timeout: float = 10.0
    dedupes: bool = False
    http: HttpClients = field(default_factory=HttpClients, repr=False, compare=False)

    @classmethod
    def from_env(cls) -> SmsGateway:
        return cls(
            url=os.environ.get("NIGHTTALK_SMS_URL"),
            token=os.environ.get("NIGHTTALK_SMS_TOKEN"),
            timeout=env.float("NIGHTTALK_SMS_TIMEOUT", 10.0, validate=POSITIVE),
            dedupes=_env_flag("NIGHTTALK_SMS_DEDUPES", False),
        )

    def send(self, message: Outgoing) -> None:
        if not self.url:
            raise TemporaryFailure("no SMS gateway configured (NIGHTTALK_SMS_URL)")
        if not message.address:
            raise PermanentFailure("no phone number")
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": message.notification_id,
        }
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        body = json.dumps({"to": message.address, "text": message.body}).encode()
        try:
            response = self.http.post(self.url, body=body, headers=headers, timeout=self.timeout)
        except urllib3.exceptions.HTTPError as exc:
            raise _unanswered(exc, "SMS gateway", self.dedupes) from exc
        _http_outcome(response.status, "SMS gateway")


@dataclass
class Smtp:
    """Send e-mail through an SMTP relay (``NIGHTTALK_SMTP_HOST``, ``_PORT``, ``_USER``,
    ``_PASSWORD``, ``_FROM``, ``_STARTTLS``)."""

    host: str | None
    port: int = 25
    user: str | None = None
    password: str | None = None
    sender: str = "nighttalk@localhost"
    starttls: bool = False
    timeout: float = 10.0
    dedupes: bool = False  # SMTP cannot tell a resent message from a new one

    @classmethod
    def from_env(cls) -> Smtp:
        return cls(
            host=os.environ.get("NIGHTTALK_SMTP_HOST"),
            port=env.int("NIGHTTALK_SMTP_PORT", 25, validate=Range(min=1, max=65535)),
            user=os.environ.get("NIGHTTALK_SMTP_USER"),
            password=os.environ.get("NIGHTTALK_SMTP_PASSWORD"),
            sender=os.environ.get("NIGHTTALK_SMTP_FROM", "nighttalk@localhost"),
            starttls=_env_flag("NIGHTTALK_SMTP_STARTTLS", False),
            timeout=env.float("NIGHTTALK_SMTP_TIMEOUT", 10.0, validate=POSITIVE),
        )

    def send(self, message: Outgoing) -> None:
        if not self.host:
            raise TemporaryFailure("no SMTP server configured (NIGHTTALK_SMTP_HOST)")
        if not message.address:
            raise PermanentFailure("no e-mail address")
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = message.address
        # On one line: a header may not hold a line break (EmailMessage refuses it, so the
        # message could not be built), and an edited subject may quote a case's summary,
        # typed over several lines. Any run of white space, line breaks included, is one
        # space.
        mail["Subject"] = " ".join((message.subject or "").split()) or message.case_number
        # Stable per notification, so a mail client can fold a duplicate.
        mail["Message-ID"] = make_msgid(idstring=message.notification_id, domain="nighttalk")
        mail["X-NightTalk-Notification"] = message.notification_id
        mail.set_content(message.body)
        smtp: _Session | None = None
        try:
            smtp = _Session(self.host, self.port, timeout=self.timeout)
            if self.starttls:
                smtp.starttls()
            if self.user:
                smtp.login(self.user, self.password or "")
            smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _text in exc.recipients.values()]
            if all(400 <= code < 500 for code in codes):
                raise TemporaryFailure(f"SMTP refused the recipient: {codes}") from exc
            raise PermanentFailure(f"SMTP refused the recipient: {codes}") from exc
        except smtplib.SMTPResponseException as exc:
            summary = f"SMTP answered {exc.smtp_code}"
            if 400 <= exc.smtp_code < 500:
                raise TemporaryFailure(summary) from exc
            raise PermanentFailure(summary) from exc
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            if smtp is not None and smtp.content_sent:
                raise OutcomeUnknown("SMTP", exc) from exc
            raise TemporaryFailure(f"SMTP unreachable: {type(exc).__name__}") from exc
        finally:
            if smtp is not None:
                smtp.leave()


class _Session(smtplib.SMTP):
    """An SMTP session that knows whether the message itself went out (DATA's 354)."""

    content_sent = False

    def getreply(self):
        code, text = super().getreply()
        if code == 354:  # the answer to DATA only: the message's content follows
            self.content_sent = True
        return code, text

    def leave(self) -> None:
        """Say QUIT and close, whatever the answer: the message's fate is settled by then
        (``with SMTP()`` raised on a QUIT not answered 221, after the message was taken)."""
        try:
            self.quit()
        except (smtplib.SMTPException, OSError):
            pass
        finally:
            self.close()


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Return the webhook signature: hex HMAC-SHA256 over ``<timestamp>.<body>``."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


@dataclass
class Webhook:
    """POST the notification as JSON to the unit's webhook, signed with HMAC-SHA256.

    Headers: ``X-NightTalk-Timestamp`` (Unix seconds), ``X-NightTalk-Signature``
    (``sha256=<hex>`` of ``<timestamp>.<body>`` with ``NIGHTTALK_WEBHOOK_SECRET``), and
    ``Idempotency-Key`` (the notification id, the same on every attempt).
    """

    secret: str
    timeout: float = 10.0
    dedupes: bool = True
    http: HttpClients = field(default_factory=HttpClients, repr=False, compare=False)

    @classmethod
    def from_env(cls) -> Webhook:
        return cls(
            secret=os.environ.get("NIGHTTALK_WEBHOOK_SECRET", "dev-only-webhook-secret"),
            timeout=env.float("NIGHTTALK_WEBHOOK_TIMEOUT", 10.0, validate=POSITIVE),
        )

    def send(self, message: Outgoing) -> None:
        if not message.address:
            raise PermanentFailure("no webhook URL")
        body = json.dumps(
            {
                "notification_id": message.notification_id,
                "case_id": message.case_id,
                "case_number": message.case_number,
                "kind": message.kind,
                "language": message.language,
                "text": message.body,
                "data": message.payload,
            },
            ensure_ascii=False,
            sort_keys=True,
        ).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": message.notification_id,
            "X-NightTalk-Timestamp": timestamp,
            "X-NightTalk-Signature": "sha256=" + signature(self.secret, timestamp, body),
        }
        try:
            response = self.http.post(
                message.address, body=body, headers=headers, timeout=self.timeout
            )
        except urllib3.exceptions.HTTPError as exc:
            raise _unanswered(exc, "webhook", self.dedupes) from exc
        _http_outcome(response.status, "webhook")


# Fonts with Chinese glyphs, in order of preference: a font named by the operator,
# then those Debian's fonts-droid-fallback / fonts-noto-cjk / fonts-wqy packages install.
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts-droid-fallback/truetype/DroidSansFallback.ttf",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
)


LATIN_FONT_CANDIDATES = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",)


def latin_font() -> Path | None:
    """Return a font for Latin letters and digits (some CJK fonts have none), if any."""
    named = os.environ.get("NIGHTTALK_LETTER_LATIN_FONT")
    for candidate in ([named] if named else []) + list(LATIN_FONT_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def letter_font() -> Path:
    """Return the CJK font the PDF letter embeds (``NIGHTTALK_LETTER_FONT`` or a known one)."""
    named = os.environ.get("NIGHTTALK_LETTER_FONT")
    for candidate in ([named] if named else []) + list(FONT_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise PermanentFailure("no CJK font for the letter: set NIGHTTALK_LETTER_FONT")


class _Paragraphs(HTMLParser):
    """Collect the letter's text, one paragraph per block element."""

    BLOCKS = {"p", "h1", "h2", "h3", "div", "br", "li", "title"}

    def __init__(self) -> None:
        super().__init__()
        self.blocks: list[tuple[str, str]] = []
        self._tag = "p"
        self._text: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("title", "style", "script"):
            self._skip += 1
        elif tag in self.BLOCKS:
            self._flush()
            self._tag = tag

    def handle_endtag(self, tag):
        if tag in ("title", "style", "script"):
            self._skip -= 1
        elif tag in self.BLOCKS:
            self._flush()

    def handle_data(self, data):
        if not self._skip:
            self._text.append(data)

    def _flush(self) -> None:
        text = " ".join("".join(self._text).split())
        if text:
            self.blocks.append((self._tag, text))
        self._text = []

    def close(self):
        super().close()
        self._flush()


class _NoLetterTextInLog(logging.Filter):
    """Keep fpdf2's warnings, without the letter's text it quotes.

    fpdf2 names the characters a font lacks (a rare character of a visitor's name, say):
    visitor data, which the logs never hold. Its message says which font, not which
    characters; any other record of fpdf2's above DEBUG keeps its wording, its
    placeholders left unfilled. Nothing is dropped, and no other logger is touched.
    """

    GLYPHS = "Font %s is missing the following glyphs: %s"

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG or not record.args:
            return True
        if record.msg == self.GLYPHS and isinstance(record.args, tuple):
            record.msg = (
                "Font %s is missing glyphs for some of the letter's characters "
                "(not logged: they may be a visitor's)"
            )
            record.args = record.args[:1]
        else:
            # The format as it stands, placeholders unfilled.
            record.msg = f"{record.msg} (values not logged: they may quote the letter)"
            record.args = None
        return True


@functools.cache
def _quiet_fpdf() -> None:
    """Put the filter on fpdf2's loggers (a logger's filter sees only its own records),
    and keep fontTools' subsetting to its warnings: at INFO, the services' level, it lists
    the glyphs of the letter by name ('uni6797' is 林), the visitor's name among them."""
    kept = _NoLetterTextInLog()
    names = [name for name in logging.Logger.manager.loggerDict if name.split(".")[0] == "fpdf"]
    for name in {"fpdf", "fpdf.output", "fpdf.fpdf", *names}:
        logging.getLogger(name).addFilter(kept)
    subset = logging.getLogger("fontTools.subset")
    if subset.getEffectiveLevel() < logging.WARNING:
        subset.setLevel(logging.WARNING)


def letter_pdf(html: str) -> bytes:
    """Typeset the letter's HTML as an A4 PDF with an embedded CJK font."""
    from fpdf import FPDF

    _quiet_fpdf()

    parser = _Paragraphs()
    parser.feed(html)
    parser.close()
    pdf = FPDF(format="A4")
    pdf.set_margins(25, 25, 25)
    pdf.add_page()
    pdf.add_font("cjk", fname=str(letter_font()))
    family = "cjk"
    latin = latin_font()
    if latin is not None:
        # Latin text (case numbers, dates) in a Latin font, the rest from the CJK font.
        pdf.add_font("latin", fname=str(latin))
        pdf.set_fallback_fonts(["cjk"])
        family = "latin"
    for tag, text in parser.blocks:
        heading = tag.startswith("h")
        pdf.set_font(family, size=18 if heading else 12)
        pdf.multi_cell(0, 10 if heading else 8, text, align="C" if heading else "L")
        pdf.ln(4)
    return bytes(pdf.output())


@dataclass
class LetterPrinter:
    """Render the letter as HTML and PDF; the worker stores both as it records the delivery."""

    dedupes: bool = True  # nothing leaves the building: the record is the delivery

    def send(self, message: Outgoing) -> Artifact:
        return Artifact(html=message.body, pdf=letter_pdf(message.body))


def from_env() -> dict[str, Channel]:
    """Return every channel configured from the environment."""
    return {
        models.SMS: SmsGateway.from_env(),
        models.EMAIL: Smtp.from_env(),
        models.WEBHOOK: Webhook.from_env(),
        models.LETTER: LetterPrinter(),
    }
