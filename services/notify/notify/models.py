"""Notify's tables and domain objects: contacts, rules, templates, notifications, letters.

A notification is one delivery: one (occasion of a case, recipient, channel), recorded
when an event gives someone something to hear, as the rules say. It carries what its
template needs, never the recipient's personal data: a visitor is looked up through
the case's visit when the notification is shown or sent and only exists encrypted in
``visitor_contacts``; a unit or its leader through ``unit_contacts``, learnt from
routing's directory events.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from servicekit.db import service_metadata
from servicekit.types import UtcDateTime

metadata = service_metadata()

# What a notification is about.
RECEIPT = "receipt"  # visitor: the case number and its due date (回执)
ROUTED = "routed"  # visitor: which unit took the case
ANSWER = "answer"  # visitor: the answer given (反馈)
SATISFACTION = "satisfaction"  # visitor: were you satisfied? (回访)
ASSIGNMENT = "assignment"  # unit: a new case to handle
WARNING = "warning"  # unit: the due date is near
OVERDUE = "overdue"  # unit: the due date has passed
ESCALATED = "escalated"  # leader: the case is under listed supervision (挂牌督办)
EXTENDED = "extended"  # visitor: the due date their receipt promised has moved
KINDS = (
    RECEIPT,
    ROUTED,
    ANSWER,
    SATISFACTION,
    ASSIGNMENT,
    WARNING,
    OVERDUE,
    ESCALATED,
    EXTENDED,
)

# Who hears it.
VISITOR = "visitor"
UNIT = "unit"  # the responsible unit's office
LEADER = "leader"  # the leader of the supervising unit
RECIPIENT_KINDS = (VISITOR, UNIT, LEADER)

# How.
SMS = "sms"
EMAIL = "email"
WEBHOOK = "webhook"
LETTER = "letter"  # 致来访者的一封信, printable as HTML and PDF
CHANNELS = (SMS, EMAIL, WEBHOOK, LETTER)

# Where a notification stands: pending → sending → delivered | failed (a temporary
# failure goes back to pending with a later next_attempt_at).
AWAITING_CONTACT = "awaiting_contact"  # the recipient's contact has not arrived yet
UNREACHABLE = "unreachable"  # the contact has no address on this channel (no phone for SMS)
PENDING = "pending"  # ready to send
SENDING = "sending"  # claimed by a delivery worker, committed before the send
DELIVERED = "delivered"
FAILED = "failed"
WAITING_FOR_ADDRESS = (AWAITING_CONTACT, UNREACHABLE)
# What a delivery worker claims (rows to send, and rows a dead worker left sending), as
# the condition of the claim's index: the claim names these statuses as literals, not
# parameters, so that the planner can prove it and use that index.
CLAIMABLE = f"status IN ('{PENDING}', '{SENDING}')"
STATUSES = (AWAITING_CONTACT, UNREACHABLE, PENDING, SENDING, DELIVERED, FAILED)

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"


class Base(DeclarativeBase):
    metadata = metadata


def new_id() -> str:
    return str(uuid.uuid4())


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class VisitorContact(Base):
    """How to reach the lead visitor of a visit: stored encrypted (see servicekit.pii)."""

    __tablename__ = "visitor_contacts"

    visit_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    unit: Mapped[str] = mapped_column(String(64))
    name_enc: Mapped[str | None] = mapped_column(Text)
    phone_enc: Mapped[str | None] = mapped_column(Text)
    address_enc: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(10))
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class ContactCase(Base):
    """Which visit (and so which contact) a case belongs to, and the unit that received it,
    learnt from either event (``case.registered``, ``visit.contact_recorded``)."""

    __tablename__ = "contact_cases"

    case_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    visit_id: Mapped[str] = mapped_column(String(64), index=True)
    # The receiving unit (the desk): every notification of the case is kept under it,
    # whichever rules are on. NULL only for a link older than the column that neither a
    # receipt nor the visit's contact told (see migration d7b3e9f1a2c4).
    unit: Mapped[str | None] = mapped_column(String(64))


class CaseAssignment(Base):
    """An assignment of a case as ``case.routed`` told of it: which unit, in which role.

    Read when an ``assignment.*`` event does not name its role (routing's events from
    before it did): a co-handling unit's (协办) resolution is not the case's answer.
    """

    __tablename__ = "case_assignments"

    assignment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(64), index=True)
    unit: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(10))


class ConfidentialCase(Base):
    """A complaint (a case that accuses a unit or an official): its notifications are kept
    from the unit it accuses and the units below it (``access.py``).

    ``case.registered`` says whom it accuses (``accused_known``); ``case.routed`` marking a
    case confidential before that arrives records it with the accused not yet known, and
    such a case is kept from every supervisor but the desk's and the handling unit's.
    """

    __tablename__ = "confidential_cases"

    case_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # None: the complaint names an official only, or (accused_known false) not yet told.
    accused_unit: Mapped[str | None] = mapped_column(String(64))
    accused_known: Mapped[bool] = mapped_column(Boolean)


LEAD, CO = "lead", "co"  # an assignment's role: the unit answering the case, or sharing it


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
    # Which occurrence of the kind: the assignment for a routing or an answer, the
    # level of an escalation; '' when a case has one (a receipt).
    occasion: Mapped[str] = mapped_column(String(64), default="", server_default="")
    # Which unit for a unit or leader recipient; '' for the visitor (found via the visit).
    recipient_ref: Mapped[str] = mapped_column(String(64), default="", server_default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    # Set with the claim, committed before the send: a worker that dies mid-send
    # leaves the row 'sending' with this time, so a restart knows a send may be out.
    sending_since: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    claim: Mapped[str | None] = mapped_column(String(36))
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        # Each (occasion, recipient, channel) exists once, whatever the redeliveries
        # or republications of the event.
        UniqueConstraint(
            "case_id",
            "kind",
            "occasion",
            "recipient_kind",
            "recipient_ref",
            "channel",
            name="uq_notifications_delivery",
        ),
        Index("ix_notifications_status_created", "status", "created_at"),
        Index("ix_notifications_recipient_ref", "recipient_ref", "status"),
        # The delivery worker's claim, oldest first, among the few rows still to send.
        # Partial, so that the claim's plan stays a walk of this small index however
        # the table grows: PostgreSQL may keep a prepared statement's generic plan until
        # something invalidates it (the table's next ANALYZE, say), and one made while the
        # table was small (a new database's first claims) was a sequential scan of every
        # notification ever sent.
        Index(
            "ix_notifications_to_claim",
            "created_at",
            "id",
            postgresql_where=text(CLAIMABLE),
            sqlite_where=text(CLAIMABLE),
        ),
    )

    def address_to(self, contact: VisitorContact | UnitContact | None) -> None:
        """Decide whether the notification can be sent, now that we know (or not) the contact."""
        if self.status not in (None, *WAITING_FOR_ADDRESS):
            return  # already on its way: a late or repeated contact changes nothing
        status, language = addressing(self.recipient_kind, self.channel, contact)
        if language is not None:
            self.language = language
        if status != self.status:
            self.status = status
            self.updated_at = now()


def addressing(recipient_kind: str, channel: str, contact) -> tuple[str, str | None]:
    """Return the status a new or waiting notification takes with its recipient's contact.

    ``contact`` is the visitor's contact for a visitor, the unit's for a unit or leader,
    None while unknown; an ORM object or a row of its columns alike (the consumer reads
    plain columns). Also returns the contact's language when the notification can use it.
    """
    if contact is None:
        return AWAITING_CONTACT, None
    if recipient_kind == VISITOR:
        if visitor_reachable_by(contact, channel):
            return PENDING, contact.language
        return UNREACHABLE, None
    reachable = unit_address_for(contact, recipient_kind, channel) is not None
    return (PENDING if reachable else UNREACHABLE), contact.language


def visitor_reachable_by(contact, channel: str) -> bool:
    """Return True if a visitor's contact (object or row) has an address on the channel."""
    if channel == SMS:
        return contact.phone_enc is not None
    # A letter is printed for the desk to hand over or post: the contact is enough.
    return channel == LETTER


def unit_address_for(contact, recipient_kind: str, channel: str) -> str | None:
    """Return where to send on the channel to a unit's office or its leader, or None."""
    if recipient_kind == LEADER:
        return {EMAIL: contact.leader_email, SMS: contact.leader_phone}.get(channel)
    return {EMAIL: contact.email, SMS: contact.phone, WEBHOOK: contact.webhook_url}.get(channel)


class UnitContact(Base):
    """How to reach a unit's office and its leader, from routing's ``unit.changed``.

    Routing's directory names the leader; e-mail, phone and webhook are kept when its
    events carry them (they are work contacts, not visitors' personal data).
    """

    __tablename__ = "unit_contacts"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(100))
    level: Mapped[str | None] = mapped_column(String(20))
    parent: Mapped[str | None] = mapped_column(String(64))
    leader: Mapped[str | None] = mapped_column(String(50))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(20))
    webhook_url: Mapped[str | None] = mapped_column(String(500))
    leader_email: Mapped[str | None] = mapped_column(String(254))
    leader_phone: Mapped[str | None] = mapped_column(String(20))
    language: Mapped[str] = mapped_column(String(10), default=DEFAULT_LANGUAGE)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    revision: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)

    def address_for(self, recipient_kind: str, channel: str) -> str | None:
        """Return where to send on the channel to the office or its leader, or None."""
        return unit_address_for(self, recipient_kind, channel)


class Rule(Base):
    """Who hears what: an event makes a kind of notification for a recipient on a channel.

    Seeded with defaults by a migration; an admin switches rules on and off or adds
    new ones through the API, and the handlers read them for every event.
    """

    __tablename__ = "rules"

    event: Mapped[str] = mapped_column(String(60), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), primary_key=True)
    recipient_kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class Template(Base):
    """An edited template; where none is stored the built-in default applies."""

    __tablename__ = "templates"

    kind: Mapped[str] = mapped_column(String(40), primary_key=True)
    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    language: Mapped[str] = mapped_column(String(10), primary_key=True)
    subject: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    updated_by: Mapped[str | None] = mapped_column(String(100))


class Letter(Base):
    """A printed letter to the visitor (致来访者的一封信): its HTML and PDF, kept for the desk."""

    __tablename__ = "letters"

    notification_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    html: Mapped[str] = mapped_column(Text)
    pdf: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
