"""Intake's tables and domain objects: visits (batches), cases, case numbers.

Domain objects record what happened in ``events`` (in-process domain events);
the use case turns them into integration events in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from servicekit.db import service_metadata
from servicekit.types import UtcDateTime

metadata = service_metadata()

OPEN = "open"
RESOLVED_ON_SPOT = "resolved_on_spot"
ROUTED = "routed"
RESOLVED = "resolved"
CLOSED = "closed"
# The visitor was not satisfied with the answer (by a unit or on the spot): supervision
# reopened the case, and no routing of it since has reached intake.
REOPENED = "reopened"
STATUSES = (OPEN, ROUTED, RESOLVED_ON_SPOT, RESOLVED, REOPENED, CLOSED)
# Still waiting for an answer: a visitor raising the same category again is a repeat,
# and Open311 shows it open.
UNANSWERED = (OPEN, ROUTED, REOPENED)
# A case only moves forward (open → routed → resolved → closed), whatever order
# routing's and supervision's events arrive in; the way back is a reopening, told by its
# time (``reopened_at``): an answer given before it no longer stands, a routing after
# it sends the case back to work, an answer after it resolves it again (see handlers.py).
STATUS_RANK = {OPEN: 0, ROUTED: 1, RESOLVED_ON_SPOT: 2, RESOLVED: 2, REOPENED: 2, CLOSED: 3}


class Base(DeclarativeBase):
    metadata = metadata


def new_id() -> str:
    return str(uuid.uuid4())


# -- domain events (in-process; see events.py for what leaves the service) -------------


@dataclass(frozen=True)
class CaseRegistered:
    case: Case


@dataclass(frozen=True)
class CaseResolvedOnSpot:
    case: Case


@dataclass(frozen=True)
class VisitRegistered:
    visit: Visit


@dataclass(frozen=True)
class VisitorContactRecorded:
    visit: Visit
    name: str | None
    phone: str | None
    address: str | None


@dataclass(frozen=True)
class VisitFollowedUp:
    visit: Visit
    case: Case


# -- aggregates ------------------------------------------------------------------------


class Visit(Base):
    """One batch (批) received by a unit: who came, how many, what they raised."""

    __tablename__ = "visits"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    unit: Mapped[str] = mapped_column(String(64), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, index=True)
    registered_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    registered_by: Mapped[str] = mapped_column(String(120))
    leader: Mapped[str | None] = mapped_column(String(50))
    headcount: Mapped[int] = mapped_column(Integer)
    # The lead visitor, protected (see intake.pii): never the ID number in clear.
    visitor_key: Mapped[str | None] = mapped_column(String(64), index=True)
    visitor_name_enc: Mapped[str | None] = mapped_column(Text)
    visitor_phone_enc: Mapped[str | None] = mapped_column(Text)
    visitor_address_enc: Mapped[str | None] = mapped_column(Text)
    visitor_id_last4: Mapped[str | None] = mapped_column(String(4))
    follow_ups: Mapped[list[str]] = mapped_column(JSON, default=list)

    cases: Mapped[list[Case]] = relationship(back_populates="visit", order_by="Case.position")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.events: list[Any] = []

    def record(self, event: Any) -> None:
        """Remember a domain event for the use case to publish."""
        if not hasattr(self, "events"):
            self.events = []
        self.events.append(event)


class Case(Base):
    """One issue raised in a visit, with the number people read out over the phone."""

    __tablename__ = "cases"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    case_number: Mapped[str] = mapped_column(String(90), unique=True)
    visit_id: Mapped[str] = mapped_column(ForeignKey("visits.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    unit: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(20))
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    category: Mapped[str] = mapped_column(String(40))
    summary: Mapped[str] = mapped_column(String(200))
    details: Mapped[str | None] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(String(200))
    accused_unit: Mapped[str | None] = mapped_column(String(64))
    accused_person: Mapped[str | None] = mapped_column(String(50))
    disposition: Mapped[str] = mapped_column(String(20))
    sign_over_unit: Mapped[str | None] = mapped_column(String(64))
    answer: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    due_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    # Who raised it, for events (``visitor_ref``): the ID number's key, else the phone's.
    visitor_key: Mapped[str | None] = mapped_column(String(64))
    # A returning visitor is recognised by either (see intake.pii), each kept on its own:
    # known first by phone only, then by ID number and phone, is one visitor.
    visitor_id_key: Mapped[str | None] = mapped_column(String(64))
    visitor_phone_key: Mapped[str | None] = mapped_column(String(64))
    repeat_of: Mapped[str | None] = mapped_column(String(36))
    repeat_count: Mapped[int] = mapped_column(Integer, default=0)
    # What routing and supervision report back (see handlers.py), for queries and Open311.
    responsible_unit: Mapped[str | None] = mapped_column(String(64))
    lead_assignment_id: Mapped[str | None] = mapped_column(String(64))
    routed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    # supervision's latest reopening of it (the visitor not satisfied with the answer).
    reopened_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    # Where an Open311 client placed the request (WGS 84), and a photo it linked.
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    media_url: Mapped[str | None] = mapped_column(String(500))

    visit: Mapped[Visit] = relationship(back_populates="cases")

    __table_args__ = (
        Index("ix_cases_unit_received", "unit", "received_at"),
        # The list's order (newest first) for those who see every unit: read from the
        # index, not a sort of the whole table.
        Index("ix_cases_received_number", "received_at", "case_number"),
        Index("ix_cases_visitor_id_category_status", "visitor_id_key", "category", "status"),
        Index("ix_cases_visitor_phone_category_status", "visitor_phone_key", "category", "status"),
        Index("ix_cases_status_received", "status", "received_at"),
    )


class AssignmentReport(Base):
    """What routing reported of one assignment of a case, whichever unit holds it.

    Kept for every assignment, not only the lead intake knows: an answer or an extension
    may arrive before the routing that makes its assignment the lead (a transfer), and a
    co-handler's must not take the lead's place.
    """

    __tablename__ = "assignment_reports"

    case_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    assignment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    # The latest due date an extension granted it (None: none granted).
    extended_due_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class Unit(Base):
    """intake's copy of routing's unit directory, kept by ``unit.changed`` events."""

    __tablename__ = "units"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(20))
    parent: Mapped[str | None] = mapped_column(String(64), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    revision: Mapped[int] = mapped_column(BigInteger)


class ReceptionSession(Base):
    """An extra night-talk session a unit opened beyond the monthly night-talk day."""

    __tablename__ = "reception_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    unit: Mapped[str] = mapped_column(String(64))
    opens_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    closes_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    note: Mapped[str | None] = mapped_column(String(200))
    opened_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_reception_sessions_unit_opens", "unit", "opens_at"),)


class CaseNumberCounter(Base):
    """The last sequence number handed out for a unit on a day."""

    __tablename__ = "case_number_counters"

    unit: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last: Mapped[int] = mapped_column(Integer)


class IdempotentRequest(Base):
    """The first answer to a request sent with an Idempotency-Key, replayed on retries."""

    __tablename__ = "idempotent_requests"

    unit: Mapped[str] = mapped_column(String(64), primary_key=True)
    # 200 as the Idempotency-Key header allows, and Open311's "open311:" prefix before it.
    key: Mapped[str] = mapped_column(String(208), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
