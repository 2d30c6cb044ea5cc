"""Routing's tables and domain objects: the unit directory and assignments (转办件).

Domain objects record what happened in ``events`` (in-process domain events); the
use case turns them into integration events in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    text,
)
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

# Levels of the programme's three tiers (市, 县/区, 乡镇).
CITY = "city"
COUNTY = "county"
TOWNSHIP = "township"
LEVELS = (CITY, COUNTY, TOWNSHIP)

# The area of a unit that belongs to no county: a city department, or the city itself.
CITY_AREA = "city"

# Roles on a case: the lead unit (主办) answers for it; assisting units may come later.
LEAD = "lead"
ROLES = (LEAD,)

# Assignment statuses; the partner actions (accept, return, transfer...) add theirs.
ASSIGNED = "assigned"
STATUSES = (ASSIGNED,)


class Base(DeclarativeBase):
    metadata = metadata


def new_id() -> str:
    return str(uuid.uuid4())


# -- domain events (in-process; see events.py for what leaves the service) -------------


@dataclass(frozen=True)
class CaseRouted:
    assignment: Assignment


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

    __table_args__ = (
        # A case has one lead unit: the same case arriving twice, under any event id,
        # is routed once (the second insert fails even under concurrent consumers).
        Index(
            "uq_assignments_lead_case",
            "case_id",
            "role",
            unique=True,
            postgresql_where=text("role = 'lead'"),
            sqlite_where=text("role = 'lead'"),
        ),
        Index("ix_assignments_unit_status", "unit", "status"),
        Index("ix_assignments_routed_at", "routed_at"),
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.events: list[Any] = []

    def record(self, event: Any) -> None:
        """Remember a domain event for the use case to publish."""
        if not hasattr(self, "events"):
            self.events = []
        self.events.append(event)
