"""What supervision's users do to a case: feedback (回访), a named supervisor, meeting decisions.

Each use case runs in one unit of work: the case's change, its timeline entry and its
outgoing events commit together. POSTs that record something take an Idempotency-Key: a
retry with the same key answers as the first request did and records nothing new.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from eventbus import envelope
from eventbus.unit_of_work import UnitOfWork
from servicekit.idempotency import IdempotencyConflict, run_once

__all__ = ["IdempotencyConflict", "idempotent"]
from supervision import models

SERVICE = "supervision"


# The statuses of a case waiting for its visitor's answer: resolved by its unit, or on the spot.
AWAITING_FEEDBACK = (models.RESOLVED, models.RESOLVED_ON_SPOT)


class NotResolved(Exception):
    """Feedback was given on a case that is not waiting for it."""

    def __init__(self, status: str):
        super().__init__(status)
        self.status = status


class AlreadyDecided(Exception):
    """The meeting already recorded a decision on this case this month."""


class UnitRefused(Exception):
    """A reassignment names a unit routing would not hand the case to: say which and why."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def now() -> dt.datetime:
    """Return the current UTC time."""
    return dt.datetime.now(dt.UTC)


def request_fingerprint(body: Any) -> str:
    """Return a stable hash of a request body, to tell a retry from another request."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def add_to_timeline(
    session: Session, event: envelope.OutgoingEvent, case_id: str, occurred_at: dt.datetime, summary
) -> None:
    """Put one of supervision's own events on the case's timeline, keyed by its event id."""
    session.add(
        models.TimelineEntry(
            event_id=event.event_id,
            case_id=case_id,
            event_type=event.routing_key,
            occurred_at=occurred_at,
            recorded_at=now(),
            summary=summary,
        )
    )


def emit(
    uow: UnitOfWork, routing_key: str, case: models.SupervisedCase, data: dict[str, Any]
) -> envelope.OutgoingEvent:
    """Emit one of supervision's events about a case and put it on the case's timeline."""
    occurred_at = dt.datetime.fromisoformat(data["occurred_at"])
    event = envelope.build(
        service=SERVICE, routing_key=routing_key, subject=case.case_id, data=data, time=occurred_at
    )
    uow.emit(event)
    summary = {k: v for k, v in data.items() if k not in ("case_id", "occurred_at")}
    add_to_timeline(uow.session, event, case.case_id, occurred_at, summary)
    return event


def idempotent(
    uow: UnitOfWork,
    *,
    unit: str,
    key: str | None,
    fingerprint: str,
    action: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    """Run ``action`` in the unit of work once per Idempotency-Key; return its answer."""
    body, _created = run_once(
        uow,
        model=models.IdempotentRequest,
        unit=unit,
        key=key,
        fingerprint=fingerprint,
        create=lambda _uow: action(),
        status_code=200,
    )
    return body


def locked_case(session: Session, case_id: str) -> models.SupervisedCase:
    """Return the case locked for update."""
    return session.scalars(
        select(models.SupervisedCase)
        .where(models.SupervisedCase.case_id == case_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def record_feedback(
    uow: UnitOfWork, case_id: str, *, satisfied: bool, comment: str | None
) -> dict[str, Any]:
    """Record the visitor's answer: satisfied closes the case, unsatisfied reopens it.

    On a case resolved by its unit or answered on the spot. Reopened, a case answered on
    the spot is announced with the unit that answered it, the one that received it; routing
    never had it, so it stays reopened, on the board with no responsible unit, until a
    routing of it arrives.
    """
    case = locked_case(uow.session, case_id)
    if case.status not in AWAITING_FEEDBACK:
        raise NotResolved(case.status)
    at = now()
    case.feedback_satisfied = satisfied
    case.feedback_comment = comment
    case.feedback_at = at
    received = {
        "case_id": case.case_id,
        "case_number": case.case_number,
        "satisfied": satisfied,
        "occurred_at": at.isoformat(),
    }
    if comment is not None:
        received["comment"] = comment
    event = emit(uow, "case.feedback_received", case, received)
    # Every answer counts in the satisfaction figures, not only the case's last one.
    uow.session.add(
        models.FeedbackAnswer(
            event_id=event.event_id,
            case_id=case.case_id,
            answered_at=at,
            satisfied=satisfied,
            receiving_unit=case.receiving_unit,
            category=case.category,
            channel=case.channel,
        )
    )
    if satisfied:
        close(uow, case, outcome="satisfied", at=at)
    else:
        case.status = models.REOPENED
        case.reopened_at = at
        case.reopen_count = (case.reopen_count or 0) + 1
        # The answer the visitor rejected no longer stands: not a resolution at first contact.
        case.answered_on_spot = False
        emit(
            uow,
            "case.reopened",
            case,
            {
                "case_id": case.case_id,
                "case_number": case.case_number,
                "unit": case.responsible_unit or case.receiving_unit,
                "reason": comment or "the visitor is not satisfied with the resolution",
                "occurred_at": at.isoformat(),
            },
        )
    case.updated_at = at
    return {"case_number": case.case_number, "status": case.status, "outcome": case.outcome}


def close(uow: UnitOfWork, case: models.SupervisedCase, *, outcome: str, at: dt.datetime) -> None:
    """Close the case with its outcome (satisfied or no_feedback) and announce it."""
    case.status = models.CLOSED
    case.outcome = outcome
    case.closed_at = at
    emit(
        uow,
        "case.closed",
        case,
        {
            "case_id": case.case_id,
            "case_number": case.case_number,
            "outcome": outcome,
            "occurred_at": at.isoformat(),
        },
    )


def close_without_feedback(
    uow: UnitOfWork, as_of: dt.datetime, window: dt.timedelta, batch: int
) -> int:
    """Close resolved cases whose visitor gave no answer within ``window``; return how many.

    One batch, claimed like the ladder's timers: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL,
    and the status itself is the guard, so a case is closed (and announced) once.
    """
    session = uow.session
    case = models.SupervisedCase
    stmt = (
        select(case)
        .where(case.status == models.RESOLVED, case.resolved_at <= as_of - window)
        .order_by(case.resolved_at)
        .limit(batch)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    rows = session.scalars(stmt).all()
    for row in rows:
        # Closed as of the instant the window ran out, whenever the sweep ran.
        close(uow, row, outcome="no_feedback", at=row.resolved_at + window)
        row.updated_at = now()
    return len(rows)


def name_supervisor(
    uow: UnitOfWork, case_id: str, *, supervisor: str, supervisor_unit: str
) -> dict[str, Any]:
    """Give a major case (重案) its named supervisor and announce the major escalation."""
    case = locked_case(uow.session, case_id)
    at = now()
    unchanged = (case.major_supervisor, case.major_supervisor_unit) == (
        supervisor,
        supervisor_unit,
    )
    if not unchanged:
        case.major_supervisor = supervisor
        case.major_supervisor_unit = supervisor_unit
        case.major_since = case.major_since or at
        case.updated_at = at
        emit(
            uow,
            "case.escalated",
            case,
            {
                "case_id": case.case_id,
                "case_number": case.case_number,
                "unit": case.responsible_unit or case.receiving_unit,
                "due_at": case.due_at.isoformat() if case.due_at else None,
                "occurred_at": at.isoformat(),
                "level": "major",
                "supervisor_unit": supervisor_unit,
                "supervisor": supervisor,
            },
        )
    return {
        "case_number": case.case_number,
        "supervisor": case.major_supervisor,
        "supervisor_unit": case.major_supervisor_unit,
        "since": case.major_since.isoformat(),
    }


def record_decision(
    uow: UnitOfWork, case_id: str, *, month: str, data: dict[str, Any], by: str
) -> dict[str, Any]:
    """Record the joint meeting's decision on a case and announce it for routing to act."""
    case = locked_case(uow.session, case_id)
    if data["decision"] == "reassign":
        _ensure_unit_takes_cases(uow.session, data["unit"])
    if uow.session.get(models.MeetingDecision, (month, case_id)) is not None:
        raise AlreadyDecided(case.case_number)
    at = now()
    payload: dict[str, Any] = {
        "case_id": case.case_id,
        "case_number": case.case_number,
        "month": month,
        "decision": data["decision"],
        "note": data["note"],
        "occurred_at": at.isoformat(),
    }
    if data.get("unit"):
        payload["unit"] = data["unit"]
    if data.get("due_at"):
        payload["due_at"] = data["due_at"].isoformat()
    event = emit(uow, "meeting.decision_recorded", case, payload)
    uow.session.add(
        models.MeetingDecision(
            month=month,
            case_id=case.case_id,
            decision=data["decision"],
            unit=data.get("unit"),
            due_at=data.get("due_at"),
            note=data["note"],
            recorded_by=by,
            recorded_at=at,
            event_id=event.event_id,
        )
    )
    return {k: v for k, v in payload.items() if k != "case_id"}


def _ensure_unit_takes_cases(session: Session, code: str) -> None:
    """Refuse a unit that supervision's copy of the directory does not hold active.

    Routing refuses a reassignment to an unknown or retired unit when the decision arrives
    (the event is dead-lettered): accepting it here would announce a decision never applied.
    With no directory at all (routing's ``unit.changed`` never arrived) no unit can be
    checked, and none is taken on trust: the refusal says so.
    """
    unit = session.get(models.Unit, code)
    if unit is not None and unit.active:
        return
    if unit is not None:
        raise UnitRefused(f"unit {code!r} is retired: it takes no cases")
    if session.scalar(select(models.Unit.code).limit(1)) is None:
        raise UnitRefused(
            f"unit {code!r} cannot be checked: supervision holds no unit directory yet "
            "(routing's unit.changed events have not arrived)"
        )
    raise UnitRefused(f"unit {code!r} is not in the unit directory")


def sweep_feedback(runtime, as_of: dt.datetime, window: dt.timedelta, batch: int) -> int:
    """Close, batch by batch, every resolved case whose feedback window ran out by ``as_of``."""
    total = 0
    while True:
        with runtime.unit_of_work() as uow:
            closed = close_without_feedback(uow, as_of, window, batch)
            if not closed:
                return total
            uow.commit()
            total += closed
