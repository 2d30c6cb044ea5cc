"""Supervision's tables and the rules that keep a supervised case right whatever the event order.

Supervision owns no case: it keeps its own copy of each one, assembled from the events of
intake and routing. Events may arrive twice or out of order, so every change here is an
upsert that only ever moves a case forward, and each fact has one owner whose word wins:
intake for what was received, routing for who is responsible and by when.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, CheckConstraint, Index, Integer, String, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from servicekit.db import service_metadata
from servicekit.types import UtcDateTime

metadata = service_metadata()

# Case statuses. Later steps (closed, reopened) join this ladder.
OPEN = "open"
ROUTED = "routed"
RESOLVED_ON_SPOT = "resolved_on_spot"
RESOLVED = "resolved"
# After the visitor's feedback (回访): closed, or reopened until routing sends it back.
CLOSED = "closed"
REOPENED = "reopened"
STATUSES = (OPEN, ROUTED, RESOLVED_ON_SPOT, RESOLVED, CLOSED, REOPENED)
# Statuses of a case still to be resolved (the board's, and "overdue open" in statistics).
UNRESOLVED = (OPEN, ROUTED, REOPENED)
# Statuses of a case resolved (on the spot or by its unit), closed after resolution included.
RESOLVED_STATES = (RESOLVED_ON_SPOT, RESOLVED, CLOSED)

# The role of an assignment (routing's): the lead unit answers for the case, a co-operating
# unit (协办) for its part only.
LEAD = "lead"
CO = "co"

# How far along each status is: a case only moves to a status further along, so a late
# case.registered never turns a routed case back to open.
_PROGRESS = {OPEN: 0, ROUTED: 1, RESOLVED_ON_SPOT: 2, RESOLVED: 2, REOPENED: 2, CLOSED: 3}


class Base(DeclarativeBase):
    metadata = metadata


class SupervisedCase(Base):
    """Supervision's view of one case: who received it, who must resolve it, by when.

    A row may be created by whichever of the case's events arrives first, so what only
    intake knows (category, channel, received_at) stays empty until case.registered.
    """

    __tablename__ = "supervised_cases"

    case_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    case_number: Mapped[str] = mapped_column(String(90), unique=True)
    receiving_unit: Mapped[str] = mapped_column(String(64), index=True)
    responsible_unit: Mapped[str | None] = mapped_column(String(64), index=True)
    category: Mapped[str | None] = mapped_column(String(40))
    channel: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    received_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    # True once intake's case.registered has been applied (the row may come from routing first).
    registered: Mapped[bool] = mapped_column(Boolean, default=False)
    routed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    due_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    # Answered on the spot (当场答复) and standing so: closed after its visitor was satisfied
    # too, no longer once the visitor's rejection reopened it (statistics' resolved_on_spot).
    answered_on_spot: Mapped[bool] = mapped_column(Boolean, server_default=false())
    assignment_id: Mapped[str | None] = mapped_column(String(64))
    # The earlier open case of the same visitor and category (a repeat visit, 重复来访).
    repeat_of: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    # The deadline clock: each start or move of the clock is a new generation, and the
    # ladder's steps fire once per generation (see ladder.py).
    clock_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The furthest ladder step fired on the current clock (its position; 0 = none yet).
    ladder_position: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    ladder_step: Mapped[str | None] = mapped_column(String(30))
    # When the case was first listed for supervision at level 1 (the unit's leader) and 2
    # (the city's), on any clock: statistics count these without reading every firing.
    escalated_level_1_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    escalated_level_2_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    # Whom the complaint accuses (for the cadre assessment feed), as intake registered it.
    accused_unit: Mapped[str | None] = mapped_column(String(64))
    accused_person: Mapped[str | None] = mapped_column(String(50))
    # The visitor's feedback (回访) on the resolution, and how the case ended.
    feedback_satisfied: Mapped[bool | None] = mapped_column(Boolean)
    feedback_comment: Mapped[str | None] = mapped_column(String(500))
    feedback_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    reopened_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    closed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    outcome: Mapped[str | None] = mapped_column(String(20))
    # A major case's (重案) named supervisor, and when the named supervision began.
    major_supervisor: Mapped[str | None] = mapped_column(String(100))
    major_supervisor_unit: Mapped[str | None] = mapped_column(String(64))
    major_since: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)

    # The deadline sweep looks for unresolved cases by due date.
    __table_args__ = (
        Index("ix_supervised_cases_status_due", "status", "due_at"),
        # The feedback sweep: resolved cases waiting for an answer, oldest resolution first.
        Index("ix_supervised_cases_status_resolved", "status", "resolved_at"),
        # Statistics over a period of reception.
        Index("ix_supervised_cases_received", "received_at"),
    )

    def record_registration(self, data: dict[str, Any]) -> None:
        """Apply intake's case.registered: the facts of reception are intake's, so they win."""
        self.case_number = data["case_number"]
        self.receiving_unit = data["unit"]
        self.category = data["category"]
        self.channel = data["channel"]
        self.received_at = data["received_at"]
        self.repeat_of = data.get("repeat_of")
        accused = data.get("accused") or {}
        self.accused_unit = accused.get("unit")
        self.accused_person = accused.get("person")
        self.registered = True
        if data["status"] == RESOLVED_ON_SPOT:
            # case.resolved_on_spot carries the authoritative time; until it comes,
            # the answer was given at the reception itself.
            self._resolve_on_spot(self.resolved_at or data["received_at"])
            return
        # The due date is routing's to set (the assignment's binding date); intake's own
        # promise stays on the timeline. A case nobody routed is found by its received_at.
        self._advance(OPEN)

    def record_routing(self, data: dict[str, Any]) -> None:
        """Apply routing's case.routed: the responsible unit and the binding due date."""
        if not self.registered:
            self.receiving_unit = data["receiving_unit"]
            self.category = self.category or data.get("category")
            self.channel = self.channel or data.get("channel")
        if self.routed_at is not None and (data["routed_at"], data["assignment_id"]) < (
            self.routed_at,
            self.assignment_id or "",
        ):
            return  # an older routing arriving late: the newer one stays in force
        self.responsible_unit = data["unit"]
        self.assignment_id = data["assignment_id"]
        self.routed_at = data["routed_at"]
        if self.status != RESOLVED_ON_SPOT:
            self.due_at = data["due_at"]
        if self.status == REOPENED and self.reopened_at and data["routed_at"] >= self.reopened_at:
            # Routing sent the reopened case back: it is open again, on a new clock.
            self.status = ROUTED
            self.resolved_at = None
            return
        self._advance(ROUTED)

    def record_resolution(self, data: dict[str, Any]) -> bool:
        """Apply routing's assignment.resolved; return True if it resolved the case.

        Only the lead assignment in force resolves the case: the answer of an assignment
        that was transferred away, or of a co-operating unit (协办), is history on the
        timeline, not the case's resolution. Before any lead's ``case.routed`` arrived, only
        an answer routing marks ``role: lead`` resolves the case; one without a role (an
        event older than the mark) may be a co-handler's, so it waits on the timeline for
        the routing that names its assignment the lead (``_apply_early_assignment_events``).
        """
        role = data.get("role")
        if role == CO:
            return False
        if self.assignment_id is None:
            if role != LEAD:
                return False
        elif self.assignment_id != data["assignment_id"]:
            return False
        if self.status == REOPENED and self.reopened_at and data["occurred_at"] > self.reopened_at:
            pass  # resolved anew after the visitor's reopening, on the same assignment
        elif self.status not in (OPEN, ROUTED):
            return False
        self.assignment_id = data["assignment_id"]
        self.responsible_unit = self.responsible_unit or data["unit"]
        self.resolved_at = data["occurred_at"]
        if self.status == REOPENED:
            # Reopened and resolved rank alike: the new answer waits for the visitor again.
            self.status = RESOLVED
        self._advance(RESOLVED)
        return True

    def record_extension(self, data: dict[str, Any]) -> bool:
        """Apply routing's assignment.extension_granted; return True if the clock must move.

        An extension of the assignment in force moves the due date of a routed case, and
        of a case resolved since if it was granted no later than the resolution (it
        arrived after it): the answer is then judged against the date in force when it
        was given. A resolved case has no clock to move.
        """
        if self.assignment_id != data["assignment_id"]:
            return False
        if self.status == ROUTED:
            pass
        elif self.status in (RESOLVED, CLOSED, REOPENED) and self.resolved_at is not None:
            if data["occurred_at"] > self.resolved_at:
                return False
        else:
            return False
        if self.due_at is not None and data["due_at"] <= self.due_at:
            return False  # an extension only ever extends; an older grant arriving late is past
        self.due_at = data["due_at"]
        return self.status == ROUTED

    def record_resolution_on_spot(self, data: dict[str, Any]) -> None:
        """Apply intake's case.resolved_on_spot: answered at the desk, so no clock runs."""
        if not self.registered:
            self.receiving_unit = data["unit"]
        self._resolve_on_spot(data["resolved_at"])

    def _resolve_on_spot(self, resolved_at: dt.datetime) -> None:
        if self.status in (REOPENED, CLOSED):
            # The visitor answered since: a late copy of the answer on the spot changes
            # nothing (a rejected one stays rejected).
            return
        self.resolved_at = resolved_at
        self.due_at = None
        self.answered_on_spot = True
        self._advance(RESOLVED_ON_SPOT)

    def _advance(self, status: str) -> None:
        if self.status is None or _PROGRESS[status] > _PROGRESS[self.status]:
            self.status = status


# The board: unresolved cases in its order (furthest step first, oldest first), so a page
# is the first rows of one index scan. Partial: resolved cases, most of them in time, are not
# in it. The board's query names the statuses as literals (see board.py) so that even a
# prepared statement's generic plan can use it.
Index(
    "ix_supervised_cases_board_unresolved",
    SupervisedCase.ladder_position.desc(),
    SupervisedCase.received_at,
    SupervisedCase.case_number,
    postgresql_where=SupervisedCase.status.in_(UNRESOLVED),
    sqlite_where=SupervisedCase.status.in_(UNRESOLVED),
)

# The unresolved cases that accuse a unit: the board takes them off a supervisor's counts
# when they accuse its unit or one above it (board_counts.levels).
Index(
    "ix_supervised_cases_accused_unresolved",
    SupervisedCase.accused_unit,
    postgresql_where=SupervisedCase.status.in_(UNRESOLVED)
    & SupervisedCase.accused_unit.is_not(None),
    sqlite_where=SupervisedCase.status.in_(UNRESOLVED) & SupervisedCase.accused_unit.is_not(None),
)


class BoardCount(Base):
    """How many unresolved cases a unit has at a ladder step, in a category: the board's counts.

    Kept by database triggers on ``supervised_cases`` (see board_counts.py): every change
    of a case's owner, category, step or status appends a change to ``board_changes``,
    which the scheduler folds in here. ``''`` stands for no category or no step yet.
    """

    __tablename__ = "board_counts"

    owner_unit: Mapped[str] = mapped_column(String(64), primary_key=True)
    category: Mapped[str] = mapped_column(String(40), primary_key=True)
    ladder_position: Mapped[int] = mapped_column(Integer, primary_key=True)
    ladder_step: Mapped[str] = mapped_column(String(30), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


class BoardChange(Base):
    """A change to the board's counts not yet folded into ``board_counts`` (+n or -n)."""

    __tablename__ = "board_changes"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    owner_unit: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(40))
    ladder_position: Mapped[int] = mapped_column(Integer)
    ladder_step: Mapped[str] = mapped_column(String(30))
    delta: Mapped[int] = mapped_column(Integer)


class TimelineEntry(Base):
    """One case or assignment event as applied to a case: the case's timeline (案件轨迹).

    Keyed by the event id, so a redelivered event adds nothing; read in order of the
    event's own time, so the timeline is the same whatever order the events came in.
    """

    __tablename__ = "timeline_entries"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(60))
    # The CloudEvent's time: when it happened, not when supervision heard of it.
    occurred_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (
        Index("ix_timeline_entries_case_order", "case_id", "occurred_at", "event_id"),
    )


class FeedbackAnswer(Base):
    """One answer of the visitor on a case's resolution (回访): the satisfaction figures.

    Every answer is kept, an unsatisfied one that reopened the case included, keyed by its
    ``case.feedback_received`` event. Statistics count the answers given in a period (by
    ``answered_at``), grouped by the case's receiving unit, category and channel, copied
    here so that counting them reads this table alone.
    """

    __tablename__ = "feedback_answers"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(64))
    answered_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    satisfied: Mapped[bool] = mapped_column(Boolean)
    receiving_unit: Mapped[str] = mapped_column(String(64))
    category: Mapped[str | None] = mapped_column(String(40))
    channel: Mapped[str | None] = mapped_column(String(20))

    __table_args__ = (Index("ix_feedback_answers_answered", "answered_at"),)


class VisitRecord(Base):
    """One batch (批) as intake registered it, kept for the statistics of batches and people."""

    __tablename__ = "visit_records"

    visit_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    unit: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(20))
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    headcount: Mapped[int] = mapped_column(Integer)
    issues: Mapped[int] = mapped_column(Integer)
    follow_ups: Mapped[int] = mapped_column(Integer)
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_visit_records_unit_received", "unit", "received_at"),)


class Unit(Base):
    """A unit of routing's directory (联动单位), copied from its unit.changed events."""

    __tablename__ = "units"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    level: Mapped[str] = mapped_column(String(20))
    parent: Mapped[str | None] = mapped_column(String(64), index=True)
    area: Mapped[str | None] = mapped_column(String(64))
    leader: Mapped[str | None] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # routing's revision of the unit: only a newer one is applied.
    revision: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


# What a ladder step publishes.
STEP_EVENTS = ("warning", "overdue", "escalated")
# Who supervises an escalated case: the responsible unit's leader, or the city's.
SUPERVISED_BY = ("unit", "city")


class LadderStep(Base):
    """One step of the escalation ladder (督办阶梯), kept as data so operators can change it.

    A step comes due either at a share of the case's term (``percent_of_term``: 80 = when
    80 % of the time from routing to the due date has passed) or some time after the due
    date (``months_after_due`` and ``days_after_due``).
    """

    __tablename__ = "ladder_steps"

    step: Mapped[str] = mapped_column(String(30), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, unique=True)
    event: Mapped[str] = mapped_column(String(20))
    level: Mapped[int | None] = mapped_column(Integer)
    percent_of_term: Mapped[int | None] = mapped_column(Integer)
    months_after_due: Mapped[int | None] = mapped_column(Integer)
    days_after_due: Mapped[int | None] = mapped_column(Integer)
    supervised_by: Mapped[str | None] = mapped_column(String(10))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        CheckConstraint(
            "(percent_of_term IS NULL) <> (months_after_due IS NULL AND days_after_due IS NULL)",
            name="one_basis",
        ),
    )


class ClockTimer(Base):
    """A ladder step still to fire on one clock of a case, at ``fire_at``.

    Written when the clock starts or moves, deleted when it stops or the step fires; the
    sweep reads only the timers that are due, by the ``fire_at`` index.
    """

    __tablename__ = "clock_timers"

    case_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    step: Mapped[str] = mapped_column(String(30), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, primary_key=True)
    fire_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, index=True)


class LadderFiring(Base):
    """A ladder step that fired on one clock of a case: the proof that it fires only once.

    Inserted in the same transaction as the step's outbox row; its primary key refuses a
    second firing of the same step on the same clock, whichever sweep tries.
    """

    __tablename__ = "ladder_firings"

    case_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    step: Mapped[str] = mapped_column(String(30), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64))
    due_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    fire_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    fired_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class IdempotentRequest(Base):
    """The first answer to a POST sent with an Idempotency-Key, replayed on retries."""

    __tablename__ = "idempotent_requests"

    unit: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class MeetingDecision(Base):
    """The joint meeting's (联席会议) decision on one case in one month."""

    __tablename__ = "meeting_decisions"

    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    decision: Mapped[str] = mapped_column(String(20))
    unit: Mapped[str | None] = mapped_column(String(64))
    due_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    note: Mapped[str] = mapped_column(String(2000))
    recorded_by: Mapped[str] = mapped_column(String(100))
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    event_id: Mapped[str] = mapped_column(String(64))
