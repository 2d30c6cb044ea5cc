"""Routing's tables and domain objects: the unit directory and assignments (转办件).

The use cases say what happened with in-process domain events (defined here) and turn
each into the integration events it announces (events.py) in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from servicekit.db import service_metadata
from servicekit.types import UtcDateTime

metadata = service_metadata()

# Levels of the programme's three tiers (市, 县/区, 乡镇).
CITY = "city"
COUNTY = "county"
TOWNSHIP = "township"
LEVELS = (CITY, COUNTY, TOWNSHIP)

# The area of a unit that belongs to no county: a city department, or the city itself.
CITY_AREA = "city"

# Roles on a case: the lead unit (主办) answers for it; assisting units may come later.
LEAD = "lead"
CO = "co"
ROLES = (LEAD, CO)

# Assignment statuses. A current assignment is assigned (待签收), accepted (已签收,
# being handled), resolved (办结) or in arbitration (awaiting the supervising unit);
# a superseded one was returned (退回), transferred (转办), or replaced (reopened or
# arbitrated), and points at the assignment that followed it.
ASSIGNED = "assigned"
ACCEPTED = "accepted"
RESOLVED = "resolved"
RETURNED = "returned"
TRANSFERRED = "transferred"
ARBITRATION = "arbitration"
REPLACED = "replaced"
STATUSES = (ASSIGNED, ACCEPTED, RESOLVED, RETURNED, TRANSFERRED, ARBITRATION, REPLACED)
OPEN_STATUSES = (ASSIGNED, ACCEPTED)

# The wildcard of a routing rule: any category, or any area.
ANY = "*"


class Base(DeclarativeBase):
    metadata = metadata


def new_id() -> str:
    return str(uuid.uuid4())


# -- domain events (in-process; see events.py for what leaves the service) -------------


@dataclass(frozen=True)
class CaseRouted:
    assignment: Assignment
    partner_queue: bool = True  # the unit reads partner copies (its queue or webhook)


@dataclass(frozen=True)
class AssignmentActed:
    """A partner or supervisor acted on an assignment: ``assignment.<action>``."""

    assignment: Assignment
    action: str
    occurred_at: dt.datetime
    by: str
    extra: dict[str, Any]
    partner_copy: bool = False


@dataclass(frozen=True)
class UnitChanged:
    unit: Unit


# -- the unit directory ------------------------------------------------------------------


class Unit(Base):
    """A linked unit (联动单位): a party or government organ at one of three levels."""

    __tablename__ = "units"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    level: Mapped[str] = mapped_column(String(10))
    parent: Mapped[str | None] = mapped_column(ForeignKey("units.code"), index=True)
    # The county or district the unit sits in, or "city": what a supervisor's
    # jurisdiction and the (category, area) routing rules are expressed in.
    area: Mapped[str] = mapped_column(String(64), index=True)
    leader: Mapped[str | None] = mapped_column(String(50))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The unit reads its cases from its own queue ``partner.<code>`` (an AMQP integration).
    # Only such units get a queue and partner copies: a broker carries a few hundred quorum
    # queues at most with ordinary file limits; the others read /v1/inbox or a webhook.
    amqp: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Bumped on every change and carried by ``unit.changed``: consumers apply only a
    # newer revision, so duplicates and reordering leave their copy right.
    revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    __table_args__ = (
        CheckConstraint("level IN ('city', 'county', 'township')", name="level"),
        CheckConstraint("parent IS NULL OR parent <> code", name="not_own_parent"),
    )


# -- assignments -------------------------------------------------------------------------


class Assignment(Base):
    """A case handed to a unit responsible for it (转办件), with its due date."""

    __tablename__ = "assignments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(String(64))
    case_number: Mapped[str] = mapped_column(String(90), index=True)
    unit: Mapped[str] = mapped_column(ForeignKey("units.code"))
    role: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    routed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    due_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    category: Mapped[str] = mapped_column(String(40))
    summary: Mapped[str] = mapped_column(String(200))
    details: Mapped[str | None] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(String(200))
    receiving_unit: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(20))
    accused_unit: Mapped[str | None] = mapped_column(String(64))
    # Set when the case accuses someone: the visitor's identity is withheld and the
    # case never reaches the accused unit (信访条例: 不得转给被检举揭发的人员或单位).
    confidential: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(String(200))
    # The assignment that took over from this one (after a return, a transfer, an
    # arbitration or a reopening); None while this one is the case's current one.
    superseded_by: Mapped[str | None] = mapped_column(String(36))
    # Returns and transfers the case has had since it was last routed by a decision
    # (rules, arbitration, reopening): over the limit, it goes to arbitration.
    moves: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The supervising unit asked to arbitrate, while the status is arbitration.
    supervising_unit: Mapped[str | None] = mapped_column(String(64))
    accepted_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    answer: Mapped[str | None] = mapped_column(Text)
    extensions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # An extension asked for beyond the policy, awaiting the supervising unit.
    extension_days: Mapped[int | None] = mapped_column(Integer)
    extension_reason: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (
        # A case has one current lead unit: the same case arriving twice, under any
        # event id, is routed once (the second insert fails even under concurrent
        # consumers); returns, transfers and arbitration supersede the previous one.
        Index(
            "uq_assignments_current_lead",
            "case_id",
            unique=True,
            postgresql_where=text("role = 'lead' AND superseded_by IS NULL"),
            sqlite_where=text("role = 'lead' AND superseded_by IS NULL"),
        ),
        Index("ix_assignments_case_id", "case_id"),
        Index("ix_assignments_unit_status", "unit", "status"),
        # A partner's list, newest first, read in order from the index (not sorted).
        Index("ix_assignments_unit_routed", "unit", "routed_at"),
        Index("ix_assignments_routed_at", "routed_at"),
    )


class AssignmentAction(Base):
    """What was done to an assignment, by whom and when: its history and progress notes."""

    __tablename__ = "assignment_actions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    assignment_id: Mapped[str] = mapped_column(ForeignKey("assignments.id"), index=True)
    action: Mapped[str] = mapped_column(String(40))
    by: Mapped[str] = mapped_column(String(100))
    occurred_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    text: Mapped[str | None] = mapped_column(Text)


# -- routing rules -------------------------------------------------------------------------


class Rule(Base):
    """(category, area) → responsible unit; ``*`` matches any; the most specific wins."""

    __tablename__ = "routing_rules"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    category: Mapped[str] = mapped_column(String(40))
    area: Mapped[str] = mapped_column(String(64))
    unit: Mapped[str] = mapped_column(ForeignKey("units.code"), index=True)
    # Overrides the one-month deadline for the cases this rule routes.
    due_days: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)

    __table_args__ = (UniqueConstraint("category", "area", name="uq_routing_rules_key"),)


class IdempotentRequest(Base):
    """The first answer to a request sent with an Idempotency-Key, replayed on retries."""

    __tablename__ = "idempotent_requests"

    unit: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


# -- partner webhooks ------------------------------------------------------------------------


class Webhook(Base):
    """The URL a unit registered to receive its partner messages, HMAC-SHA256 signed."""

    __tablename__ = "webhooks"

    unit: Mapped[str] = mapped_column(ForeignKey("units.code"), primary_key=True)
    url: Mapped[str] = mapped_column(String(500))
    # The shared key of the signature: made when the webhook is first registered, kept
    # when it is registered again, changed only on request (a PUT with rotate_secret).
    secret: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class WebhookDelivery(Base):
    """A partner message waiting for (or done with) its webhook: an outbox of its own."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    unit: Mapped[str] = mapped_column(String(64), index=True)
    event_id: Mapped[str] = mapped_column(String(36))
    headers: Mapped[dict] = mapped_column(JSON)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    # Set when the attempts are spent: an operator looks, the partner still has its queue.
    failed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (
        UniqueConstraint("unit", "event_id", name="uq_webhook_deliveries_unit_event"),
        Index("ix_webhook_deliveries_due", "delivered_at", "failed_at", "next_attempt_at"),
    )
