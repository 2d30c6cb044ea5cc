"""Notify's tables and domain objects: visitors' contacts, cases' links to them, notifications.

A notification is recorded when an event gives someone something to hear (now: the
receipt of a registered case) and carries what its template needs, never the
recipient's personal data: the recipient is looked up through the case's visit
when the notification is shown or sent, and only exists encrypted in
``visitor_contacts``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, Index, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from eventbus.tables import add_event_tables
from servicekit.types import UtcDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)
add_event_tables(metadata)

# What a notification is about (more kinds come with routing and supervision events).
RECEIPT = "receipt"

# Who hears it, and how.
VISITOR = "visitor"
SMS = "sms"

# Where a notification stands. Delivery (a later issue) moves PENDING to DELIVERED or FAILED.
AWAITING_CONTACT = "awaiting_contact"  # the visitor's contact has not arrived yet
UNREACHABLE = "unreachable"  # the contact has no address on this channel (no phone for SMS)
PENDING = "pending"  # ready to send
DELIVERED = "delivered"
FAILED = "failed"
WAITING_FOR_ADDRESS = (AWAITING_CONTACT, UNREACHABLE)

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"


class Base(DeclarativeBase):
    metadata = metadata


def new_id() -> str:
    return str(uuid.uuid4())


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class VisitorContact(Base):
    """How to reach the lead visitor of a visit: stored encrypted (see pii.py)."""

    __tablename__ = "visitor_contacts"

    visit_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    unit: Mapped[str] = mapped_column(String(64))
    name_enc: Mapped[str | None] = mapped_column(Text)
    phone_enc: Mapped[str | None] = mapped_column(Text)
    address_enc: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(10))
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)

    def reachable_by(self, channel: str) -> bool:
        """Return True if this contact has an address on the channel."""
        if channel == SMS:
            return self.phone_enc is not None
        return False


class ContactCase(Base):
    """Which visit (and so which contact) a case belongs to, learnt from either event."""

    __tablename__ = "contact_cases"

    case_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    visit_id: Mapped[str] = mapped_column(String(64), index=True)


class Notification(Base):
    """One thing to tell one recipient on one channel, recorded once per case and kind."""

    __tablename__ = "notifications"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    event_id: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[str] = mapped_column(String(64))
    case_number: Mapped[str] = mapped_column(String(90), index=True)
    # The case's receiving unit: a reception desk reads the notifications of its own cases.
    unit: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(40))
    recipient_kind: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    language: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (
        # Each (event, recipient, channel) exists once, whatever the redeliveries.
        UniqueConstraint("case_id", "kind", "recipient_kind", "channel"),
        Index("ix_notifications_status_created", "status", "created_at"),
    )

    def address_to(self, contact: VisitorContact | None) -> None:
        """Decide whether the notification can be sent, now that we know (or not) the contact."""
        if self.status not in (None, *WAITING_FOR_ADDRESS):
            return  # already on its way: a late or repeated contact changes nothing
        if contact is None:
            status = AWAITING_CONTACT
        elif contact.reachable_by(self.channel):
            status = PENDING
            self.language = contact.language
        else:
            status = UNREACHABLE
        if status != self.status:
            self.status = status
            self.updated_at = now()
