"""Keep visitors' personal data protected at rest and masked on the way out.

- The ID number is never stored: only a keyed hash (to recognise a returning visitor)
  and its last four characters (for a clerk to confirm who is in front of them). The
  phone, normalised, has a keyed hash of its own: a visitor is recognised by either.
- Name, phone and address are stored encrypted, and masked in answers, as notify does
  with its copy (``servicekit.pii``: both keys derive from ``NIGHTTALK_PII_KEY``).
"""

from __future__ import annotations

import hashlib
import hmac
import re

from servicekit.pii import decrypt, derive, encrypt, mask_address, mask_name, mask_phone

__all__ = [
    "decrypt",
    "encrypt",
    "id_key",
    "mask_address",
    "mask_id_last4",
    "mask_name",
    "mask_phone",
    "normalise_phone",
    "phone_key",
]


def id_key(id_number: str | None) -> str | None:
    """Return the keyed hash of an ID number (None without one)."""
    if not id_number or not id_number.strip():
        return None
    return _keyed("id:" + id_number.strip().upper())


def phone_key(phone: str | None) -> str | None:
    """Return the keyed hash of a phone number, however it was written (None without one)."""
    normalised = normalise_phone(phone)
    return _keyed("phone:" + normalised) if normalised else None


def normalise_phone(phone: str | None) -> str | None:
    """Return a phone number as dialled within China: 13905961234, 05962123456.

    A desk types what it hears and an online form what the visitor typed: spaces,
    dashes, brackets and the country code (+86, 0086, 86 before a mobile number) are
    left out, so that one phone is one visitor however it was written.
    """
    if not phone:
        return None
    digits = _SEPARATORS.sub("", phone)
    national = None
    if digits.startswith("+86"):
        national = digits[3:]
    elif digits.startswith("0086"):
        national = digits[4:]
    elif digits.startswith("86") and _MOBILE.fullmatch(digits[2:]):
        national = digits[2:]
    if national is None:
        return digits or None
    # Dialled from abroad, a landline drops its trunk 0 (+86 596 2123456 is 0596 2123456).
    if _MOBILE.fullmatch(national) or national.startswith("0"):
        return national
    return "0" + national


_SEPARATORS = re.compile(r"[\s\-().]")
_MOBILE = re.compile(r"1\d{10}")


def _keyed(material: str) -> str:
    return hmac.new(derive("visitor"), material.encode(), hashlib.sha256).hexdigest()


def mask_id_last4(last4: str | None) -> str | None:
    """Show an ID number as its last four characters behind stars."""
    return None if not last4 else "*" * 14 + last4
