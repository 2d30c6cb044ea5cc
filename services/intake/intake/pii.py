"""Keep visitors' personal data protected at rest and masked on the way out.

- The ID number is never stored: only a keyed hash (to recognise a returning visitor)
  and its last four characters (for a clerk to confirm who is in front of them).
- Name, phone and address are stored encrypted, and masked in answers, as notify does
  with its copy (``servicekit.pii``: both keys derive from ``NIGHTTALK_PII_KEY``).
"""

from __future__ import annotations

import hashlib
import hmac

from servicekit.pii import decrypt, derive, encrypt, mask_address, mask_name, mask_phone

__all__ = [
    "decrypt",
    "encrypt",
    "mask_address",
    "mask_id_last4",
    "mask_name",
    "mask_phone",
    "visitor_key",
]


def visitor_key(id_number: str | None, phone: str | None) -> str | None:
    """Return a keyed hash identifying a visitor by ID number, else by phone."""
    if id_number:
        material = "id:" + id_number.strip().upper()
    elif phone:
        material = "phone:" + phone.strip()
    else:
        return None
    return hmac.new(derive("visitor"), material.encode(), hashlib.sha256).hexdigest()


def mask_id_last4(last4: str | None) -> str | None:
    """Show an ID number as its last four characters behind stars."""
    return None if not last4 else "*" * 14 + last4
