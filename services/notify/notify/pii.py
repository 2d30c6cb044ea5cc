"""Keep visitors' contacts protected at rest and masked on the way out.

Name, phone and address are stored encrypted (Fernet: AES-128-CBC with HMAC-SHA256)
because notify must read the phone back to send an SMS. The key derives from
``NIGHTTALK_PII_KEY`` as intake's does (services share no code, only the secret),
so an operator rotates one secret for the whole system.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.fernet import Fernet, InvalidToken

DEV_KEY = "dev-only-pii-key-change-me"


def _key() -> bytes:
    return os.environ.get("NIGHTTALK_PII_KEY", DEV_KEY).encode()


def _derive(label: str) -> bytes:
    return hmac.new(_key(), label.encode(), hashlib.sha256).digest()


def _fernet() -> Fernet:
    return Fernet(base64.urlsafe_b64encode(_derive("fernet")))


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
    """13905961234 → 139****1234."""
    if not phone:
        return phone
    if len(phone) <= 7:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def mask_address(address: str | None) -> str | None:
    """郭坑镇中学旁 → 郭坑***: enough to recognise, not to locate."""
    if not address:
        return address
    return address[:2] + "***"
