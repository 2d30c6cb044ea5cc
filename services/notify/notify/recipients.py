"""Find who a notification is for: the seam between notifications and their delivery.

The API shows visitors masked; the delivery worker (delivery.py) resolves a claimed
notification's visitor here in clear, in memory only, to render and send it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, bindparam, select
from sqlalchemy.orm import Session

from notify import models
from servicekit import pii


@dataclass(frozen=True)
class Recipient:
    """A recipient in clear: keep it in memory, never log or store it."""

    kind: str
    name: str | None
    phone: str | None
    address: str | None
    language: str

    def __repr__(self) -> str:
        # A stray log line or traceback must not print a visitor's data.
        return f"Recipient(kind={self.kind!r}, <redacted>)"

    def masked(self) -> dict[str, Any]:
        """Return the recipient as the API shows it."""
        return {
            "kind": self.kind,
            "name": pii.mask_name(self.name),
            "phone": pii.mask_phone(self.phone),
            "address": pii.mask_address(self.address),
        }


def recipient_of(session: Session, notification: models.Notification | Row) -> Recipient | None:
    """Return the notification's recipient, or None while its contact is unknown."""
    if notification.recipient_kind != models.VISITOR:
        return None
    contact = session.execute(visitor_contact_columns(), {"case_id": notification.case_id}).first()
    if contact is None:
        return None
    return visitor_in_clear(contact, contact.language)


def visitor_in_clear(contact: Any, language: str) -> Recipient:
    """Return the visitor of a contact's encrypted columns (a row having them), decrypted."""
    return Recipient(
        kind=models.VISITOR,
        name=pii.decrypt(contact.name_enc),
        phone=pii.decrypt(contact.phone_enc),
        address=pii.decrypt(contact.address_enc),
        language=language,
    )


@functools.cache
def visitor_contact_columns():
    """Return the contact (encrypted columns and language) of a case's (``case_id``) visit.

    Plain columns, for the reads that address or decrypt it (the consumer, a delivery):
    built once, as building a statement costs about as much as running it.
    """
    contact, link = models.VisitorContact.__table__, models.ContactCase.__table__
    return (
        select(contact.c.name_enc, contact.c.phone_enc, contact.c.address_enc, contact.c.language)
        .join(link, link.c.visit_id == contact.c.visit_id)
        .where(link.c.case_id == bindparam("case_id"))
    )
