"""Apply intake's and routing's events to supervised cases, their timelines and visit records.

Each handler runs inside the consumer's unit of work (which commits and writes the
inbox row). Handlers are idempotent on their own too: the timeline entry keyed by
the event id is written first, and an event already on the timeline changes nothing.
Rows are created with INSERT .. ON CONFLICT DO NOTHING and then locked, so two
consumers applying two events of one new case neither fail nor overwrite each other.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from eventbus.envelope import ReceivedEvent
from eventbus.unit_of_work import UnitOfWork
from supervision import models, payloads

Handler = Callable[[UnitOfWork, ReceivedEvent], None]


def now() -> dt.datetime:
    """Return the current UTC time."""
    return dt.datetime.now(dt.UTC)


def iso(value: dt.datetime | None) -> str | None:
    """Return an instant as ISO 8601 for a JSON summary."""
    return value.isoformat() if value is not None else None


def _insert(session: Session):
    """Return the INSERT of the session's dialect (both know ON CONFLICT DO NOTHING)."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def record_on_timeline(
    session: Session,
    event: ReceivedEvent,
    *,
    event_type: str,
    case_id: str,
    occurred_at: dt.datetime,
    summary: dict[str, Any],
) -> bool:
    """Add the event to its case's timeline; return False if it was there already."""
    table = models.TimelineEntry.__table__
    stmt = (
        _insert(session)(table)
        .values(
            event_id=event.id,
            case_id=case_id,
            event_type=event_type,
            # Events without a time still order: by the instant their data names.
            occurred_at=event.time or occurred_at,
            recorded_at=now(),
            summary=summary,
        )
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(table.c.event_id)
    )
    return session.execute(stmt).first() is not None


def case_for_update(
    session: Session, case_id: str, case_number: str, receiving_unit: str
) -> models.SupervisedCase:
    """Return the supervised case, created bare if this is its first event, locked for update."""
    stmt = (
        _insert(session)(models.SupervisedCase.__table__)
        .values(
            case_id=case_id,
            case_number=case_number,
            receiving_unit=receiving_unit,
            status=models.OPEN,
            registered=False,
            updated_at=now(),
        )
        .on_conflict_do_nothing(index_elements=["case_id"])
    )
    session.execute(stmt)
    return session.scalars(
        select(models.SupervisedCase)
        .where(models.SupervisedCase.case_id == case_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


# -- the handlers ------------------------------------------------------------------------


def on_case_registered(uow: UnitOfWork, event: ReceivedEvent) -> None:
    """Open the case's supervision with what intake registered."""
    data = payloads.load(payloads.CaseRegistered(), event, "case_id")
    summary = {
        "case_number": data["case_number"],
        "unit": data["unit"],
        "channel": data["channel"],
        "category": data["category"],
        "summary": data.get("summary"),
        "disposition": data["disposition"],
        "accused": data["accused"],
        "status": data["status"],
        "due_at": iso(data["due_at"]),
        "repeat_of": data["repeat_of"],
    }
    if not record_on_timeline(
        uow.session,
        event,
        event_type="case.registered",
        case_id=data["case_id"],
        occurred_at=data["received_at"],
        summary=summary,
    ):
        return
    case = case_for_update(uow.session, data["case_id"], data["case_number"], data["unit"])
    case.record_registration(data)
    case.updated_at = now()


def on_case_resolved_on_spot(uow: UnitOfWork, event: ReceivedEvent) -> None:
    """Mark the case answered at the reception desk (当场答复): no deadline clock."""
    data = payloads.load(payloads.CaseResolvedOnSpot(), event, "case_id")
    summary = {
        "case_number": data["case_number"],
        "unit": data["unit"],
        "answer": data.get("answer"),
        "resolved_at": iso(data["resolved_at"]),
    }
    if not record_on_timeline(
        uow.session,
        event,
        event_type="case.resolved_on_spot",
        case_id=data["case_id"],
        occurred_at=data["resolved_at"],
        summary=summary,
    ):
        return
    case = case_for_update(uow.session, data["case_id"], data["case_number"], data["unit"])
    case.record_resolution_on_spot(data)
    case.updated_at = now()


def on_case_routed(uow: UnitOfWork, event: ReceivedEvent) -> None:
    """Start the case's clock at routing's due date, with the unit responsible for it."""
    data = payloads.load(payloads.CaseRouted(), event, "case_id")
    summary = {
        "case_number": data["case_number"],
        "unit": data["unit"],
        "role": data.get("role"),
        "assignment_id": data["assignment_id"],
        "routed_at": iso(data["routed_at"]),
        "due_at": iso(data["due_at"]),
        "confidential": data["confidential"],
    }
    if not record_on_timeline(
        uow.session,
        event,
        event_type="case.routed",
        case_id=data["case_id"],
        occurred_at=data["routed_at"],
        summary=summary,
    ):
        return
    case = case_for_update(
        uow.session, data["case_id"], data["case_number"], data["receiving_unit"]
    )
    case.record_routing(data)
    case.updated_at = now()


def on_visit_followed_up(uow: UnitOfWork, event: ReceivedEvent) -> None:
    """Put a repeat visit about a known case on that case's timeline."""
    data = payloads.load(payloads.VisitFollowedUp(), event, "case_id")
    # The case row is left alone: this event does not say who received the case, and
    # its timeline entry is found by case id once case.registered arrives.
    record_on_timeline(
        uow.session,
        event,
        event_type="visit.followed_up",
        case_id=data["case_id"],
        occurred_at=data["received_at"],
        summary={
            "case_number": data["case_number"],
            "visit_id": data["visit_id"],
            "unit": data["unit"],
            "channel": data["channel"],
            "received_at": iso(data["received_at"]),
        },
    )


def on_visit_registered(uow: UnitOfWork, event: ReceivedEvent) -> None:
    """Keep the batch's counts (batches, person-visits, issues) for the statistics."""
    data = payloads.load(payloads.VisitRegistered(), event, "visit_id")
    # A visit is registered once and never changes: the first copy stands.
    uow.session.execute(
        _insert(uow.session)(models.VisitRecord.__table__)
        .values(
            visit_id=data["visit_id"],
            unit=data["unit"],
            channel=data["channel"],
            received_at=data["received_at"],
            headcount=data["headcount"],
            issues=len(data["case_ids"]),
            follow_ups=len(data["follow_ups"]),
            recorded_at=now(),
        )
        .on_conflict_do_nothing(index_elements=["visit_id"])
    )


def handlers(runtime=None) -> Mapping[str, Handler]:
    """Return the handler of each routing key supervision's queue is bound to."""
    return {
        "case.registered": on_case_registered,
        "case.resolved_on_spot": on_case_resolved_on_spot,
        "case.routed": on_case_routed,
        "visit.registered": on_visit_registered,
        "visit.followed_up": on_visit_followed_up,
    }
