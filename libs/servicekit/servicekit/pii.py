"""Keep visitors' personal data protected at rest and masked on the way out.

Name, phone and address are stored encrypted (Fernet: AES-128-CBC with HMAC-SHA256),
because they must be read back: notify sends the SMS, the desk shows them masked. Keys
derive from ``NIGHTTALK_PII_KEY``, one secret for the services that hold such data
(intake and notify, each its own copy); rotating it is a migration, not a restart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.fernet import Fernet, InvalidToken

DEV_KEY = "dev-only-pii-key-change-me"


def derive(label: str) -> bytes:
    """Return the key for one use (``label``) derived from ``NIGHTTALK_PII_KEY``."""
    secret = os.environ.get("NIGHTTALK_PII_KEY", DEV_KEY).encode()
    return hmac.new(secret, label.encode(), hashlib.sha256).digest()


def _fernet() -> Fernet:
    return Fernet(base64.urlsafe_b64encode(derive("fernet")))


def encrypt(value: str | None) -> str | None:
    """Encrypt a value for storage (None stays None)."""
    if value is None:
        return None
    return _fernet().encrypt(value.encode()).decode()


def decrypt(token: str | None) -> str | None:
    """Decrypt a stored value; an undecryptable one (wrong key) reads as None."""
    if token is None:
        return None
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        return None


def mask_name(name: str | None) -> str | None:
    """林河清 → 林*清; 林河 → 林*."""
    if not name:
        return name
    if len(name) <= 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def mask_phone(phone: str | None) -> str | None:
    """13905961234 → 139****1234; 29612345 → ****2345; 110 → ***.

    A number shorter than a mobile's eleven digits (a landline, without or with its area
    code) shows its last four at most: the first three as well would leave one to guess.
    """
    if not phone:
        return phone
    if len(phone) <= 7:
        return "*" * len(phone)
    if len(phone) < 11:
        return "*" * (len(phone) - 4) + phone[-4:]
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def mask_address(address: str | None) -> str | None:
    """郭坑镇中学旁 → 郭坑***: enough to recognise, not to locate."""
    if not address:
        return address
    return address[:2] + "***"
