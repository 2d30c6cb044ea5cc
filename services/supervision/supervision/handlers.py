"""Apply intake's and routing's events to supervised cases, their timelines and visit records.

Each handler runs inside the consumer's unit of work (which commits and writes the
inbox row). Handlers are idempotent on their own too: the timeline entry keyed by
the event id is written first, and an event already on the timeline changes nothing.
Cases are created with INSERT .. ON CONFLICT DO NOTHING and otherwise locked as they
stand, so two consumers applying two events of one new case neither fail nor overwrite
each other.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from eventbus.envelope import ReceivedEvent
from eventbus.unit_of_work import UnitOfWork
from servicekit.db import insert_for
from supervision import ladder, models, payloads

Handler = Callable[[UnitOfWork, ReceivedEvent], None]

# The role of a co-operating unit's assignment (协办): on the timeline, not on the clock.
CO = models.CO


def now() -> dt.datetime:
    """Return the current UTC time."""
    return dt.datetime.now(dt.UTC)


def iso(value: dt.datetime | None) -> str | None:
    """Return an instant as ISO 8601 for a JSON summary."""
    return value.isoformat() if value is not None else None


def _insert(session: Session):
    """Return the INSERT of the session's dialect (both know ON CONFLICT DO NOTHING)."""
    return insert_for(session.get_bind().dialect.name)


# The two statements every event runs, built once per dialect: building one and its cache
# key cost more than running it; the values come as parameters.
@functools.cache
def _timeline_statement(dialect: str):
    table = models.TimelineEntry.__table__
    return (
        insert_for(dialect)(table)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(table.c.event_id)
    )


@functools.cache
def _bare_case_statement(dialect: str):
    # A Core INSERT whose RETURNING rows the ORM loads as the new case object.
    table = models.SupervisedCase.__table__
    inserted = (
        insert_for(dialect)(table)
        .on_conflict_do_nothing(index_elements=["case_id"])
        .returning(*table.c)
    )
    return select(models.SupervisedCase).from_statement(inserted)


@functools.cache
def _new_case_statement(dialect: str):
    table = models.SupervisedCase.__table__
    return (
        insert_for(dialect)(table)
        .on_conflict_do_nothing(index_elements=["case_id"])
        .returning(table.c.case_id)
    )


@functools.cache
def _case_for_update_statement():
    return (
        select(models.SupervisedCase)
        .where(models.SupervisedCase.case_id == bindparam("case_id"))
        .with_for_update()
        .execution_options(populate_existing=True)
    )


@functools.cache
def _early_assignment_events_statement():
    entry = models.TimelineEntry
    return (
        select(entry)
        .where(
            entry.case_id == bindparam("case_id"),
            entry.event_type.in_(("assignment.extension_granted", "assignment.resolved")),
        )
        .order_by(entry.occurred_at, entry.event_id)
    )


@functools.cache
def _visit_record_statement(dialect: str):
    return insert_for(dialect)(models.VisitRecord.__table__).on_conflict_do_nothing(
        index_elements=["visit_id"]
    )


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
    values = {
        "event_id": event.id,
        "case_id": case_id,
        "event_type": event_type,
        # Events without a time still order: by the instant their data names.
        "occurred_at": event.time or occurred_at,
        "recorded_at": now(),
        "summary": summary,
    }
    stmt = _timeline_statement(session.get_bind().dialect.name)
    return session.execute(stmt, values).first() is not None


def case_for_update(
    session: Session, case_id: str, case_number: str, receiving_unit: str
) -> models.SupervisedCase:
    """Return the supervised case, created bare if this is its first event, locked for update.

    An event after the registration usually finds its case: it locks it first, and only if
    it is missing inserts it bare and has the new row back. A concurrent insert of the same
    case waits on PostgreSQL for the other's commit, then inserts nothing, and the row is
    locked as it stands.
    """
    case = session.scalars(_case_for_update_statement(), {"case_id": case_id}).one_or_none()
    if case is not None:
        return case
    created = session.scalars(
        _bare_case_statement(session.get_bind().dialect.name),
        {
            "case_id": case_id,
            "case_number": case_number,
            "receiving_unit": receiving_unit,
            "status": models.OPEN,
            "registered": False,
            "updated_at": now(),
        },
    ).one_or_none()
    if created is not None:
        return created  # this transaction wrote it: no one else holds or sees it yet
    return session.scalars(_case_for_update_statement(), {"case_id": case_id}).one()


# -- the handlers ------------------------------------------------------------------------


def on_case_registered(uow: UnitOfWork, event: ReceivedEvent) -> None:
    """Open the case's supervision with what intake registered."""
    data = payloads.load(payloads.CaseRegistered, event, "case_id")
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
    _register_case(uow.session, data)


def _register_case(session: Session, data: dict[str, Any]) -> None:
    """Insert the case as intake registered it: one statement, as a case usually begins.

    The registration is applied to a new case in memory and the row inserted whole; if the
    case is there already (routing's event came first), it is locked and the registration
    applied to it as it stands.
    """
    case_id = data["case_id"]
    new = models.SupervisedCase(
        case_id=case_id,
        case_number=data["case_number"],
        receiving_unit=data["unit"],
        status=models.OPEN,
        registered=False,
    )
    new.record_registration(data)
    new.updated_at = now()
    # The columns the registration set; the others take their defaults.
    columns = models.SupervisedCase.__table__.c
    values = {name: value for name, value in vars(new).items() if name in columns}
    inserted = session.execute(_new_case_statement(session.get_bind().dialect.name), values)
    if inserted.first() is not None:
        return
    case = session.scalars(_case_for_update_statement(), {"case_id": case_id}).one()
    case.record_registration(data)
    case.updated_at = now()


def on_case_resolved_on_spot(uow: UnitOfWork, event: ReceivedEvent) -> None:
    """Mark the case answered at the reception desk (当场答复): no deadline clock."""
    data = payloads.load(payloads.CaseResolvedOnSpot, event, "case_id")
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
    ladder.stop_clock(uow.session, case)
    case.updated_at = now()


def on_case_routed(uow: UnitOfWork, event: ReceivedEvent) -> None:
    """Start the case's clock at routing's due date, with the unit responsible for it."""
    data = payloads.load(payloads.CaseRouted, event, "case_id")
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
    if data.get("role") == CO:
        # A co-operating unit helps; the lead unit answers for the case and its clock.
        return
    case = case_for_update(
        uow.session, data["case_id"], data["case_number"], data["receiving_unit"]
    )
    # The queries below read timeline entries and the ladder, never this case: its
    # changes are written once, at the commit, not by a flush before each query (each
    # UPDATE of a case also runs the board's trigger).
    with uow.session.no_autoflush:
        before = (case.assignment_id, case.due_at, case.status)
        case.record_routing(data)
        _apply_early_assignment_events(uow.session, case)
        if (case.assignment_id, case.due_at, case.status) != before:
            ladder.restart_clock(uow.session, case)
        case.updated_at = now()


def _apply_early_assignment_events(session: Session, case: models.SupervisedCase) -> None:
    """Apply what the case's assignment reported before its case.routed arrived.

    An extension or a resolution of an assignment not yet in force (a transfer's or a
    reopening's new assignment, routed after the one the case held, or, before any routing,
    an answer without a role, which may be a co-handler's) only went on the timeline; now
    that the routing gives the case that assignment, they count: the extensions first,
    then the resolution (the clock restarted after this stops at once).
    """
    entries = session.scalars(_early_assignment_events_statement(), {"case_id": case.case_id}).all()
    mine = [e for e in entries if e.summary.get("assignment_id") == case.assignment_id]
    for item in mine:
        if item.event_type == "assignment.extension_granted" and item.summary.get("due_at"):
            case.record_extension(
                {
                    "assignment_id": item.summary["assignment_id"],
                    "due_at": dt.datetime.fromisoformat(item.summary["due_at"]),
                    "occurred_at": item.occurred_at,
                }
            )
    for item in mine:
        if item.event_type == "assignment.resolved":
            case.record_resolution(
                {
                    "assignment_id": item.summary["assignment_id"],
                    "unit": item.summary["unit"],
                    "occurred_at": item.occurred_at,
                }
            )
            break


def on_visit_followed_up(uow: UnitOfWork, event: ReceivedEvent) -> None:
    """Put a repeat visit about a known case on that case's timeline."""
    data = payloads.load(payloads.VisitFollowedUp, event, "case_id")
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
    data = payloads.load(payloads.VisitRegistered, event, "visit_id")
    # A visit is registered once and never changes: the first copy stands.
    uow.session.execute(
        _visit_record_statement(uow.session.get_bind().dialect.name),
        {
            "visit_id": data["visit_id"],
            "unit": data["unit"],
            "channel": data["channel"],
            "received_at": data["received_at"],
            "headcount": data["headcount"],
            "issues": len(data["case_ids"]),
            "follow_ups": len(data["follow_ups"]),
            "recorded_at": now(),
        },
    )


def _assignment_summary(data: dict[str, Any]) -> dict[str, Any]:
    summary = {
        "case_number": data["case_number"],
        "assignment_id": data["assignment_id"],
        "unit": data["unit"],
        "by": data.get("by"),
    }
    if data.get("role") is not None:
        summary["role"] = data["role"]
    for key in ("reason", "note", "answer", "to_unit", "supervising_unit", "granted_by"):
        if data.get(key) is not None:
            summary[key] = data[key]
    if data.get("due_at") is not None:
        summary["due_at"] = iso(data["due_at"])
    return summary


def _assignment_handler(event_type: str, schema=payloads.AssignmentEvent, apply=None) -> Handler:
    """Return the handler of one assignment event: on the timeline, then ``apply`` to the case."""

    def handle(uow: UnitOfWork, event: ReceivedEvent) -> None:
        data = payloads.load(schema, event, "case_id")
        if not record_on_timeline(
            uow.session,
            event,
            event_type=event_type,
            case_id=data["case_id"],
            occurred_at=data["occurred_at"],
            summary=_assignment_summary(data),
        ):
            return
        if apply is None:
            return
        case = case_for_update(uow.session, data["case_id"], data["case_number"], data["unit"])
        apply(uow.session, case, data)
        case.updated_at = now()

    handle.__name__ = f"on_{event_type.replace('.', '_')}"
    handle.__doc__ = f"Apply routing's {event_type} to the case's timeline and clock."
    return handle


def _resolve(session: Session, case: models.SupervisedCase, data: dict[str, Any]) -> None:
    """Stop the clock: the responsible unit resolved the case."""
    if case.record_resolution(data):
        ladder.stop_clock(session, case)


def _extend(session: Session, case: models.SupervisedCase, data: dict[str, Any]) -> None:
    """Move the clock to the new due date the extension grants."""
    if case.record_extension(data):
        ladder.restart_clock(session, case)


def on_unit_changed(uow: UnitOfWork, event: ReceivedEvent) -> None:
    """Keep supervision's copy of routing's unit directory; only a newer revision applies."""
    data = payloads.load(payloads.UnitChanged, event, "code")
    session = uow.session
    values = {
        "code": data["code"],
        "name": data["name"],
        "level": data["level"],
        "parent": data["parent"],
        "area": data["area"],
        "leader": data["leader"],
        "active": data["active"],
        "revision": data["revision"],
        "updated_at": now(),
    }
    session.execute(
        _insert(session)(models.Unit.__table__)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["code"])
    )
    unit = session.scalars(
        select(models.Unit)
        .where(models.Unit.code == data["code"])
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if data["revision"] > unit.revision:
        for key, value in values.items():
            setattr(unit, key, value)


def handlers(runtime=None) -> Mapping[str, Handler]:
    """Return the handler of each routing key supervision's queue is bound to."""
    return {
        "case.registered": on_case_registered,
        "case.resolved_on_spot": on_case_resolved_on_spot,
        "case.routed": on_case_routed,
        "visit.registered": on_visit_registered,
        "visit.followed_up": on_visit_followed_up,
        "unit.changed": on_unit_changed,
        "assignment.accepted": _assignment_handler("assignment.accepted"),
        "assignment.returned": _assignment_handler("assignment.returned"),
        "assignment.transferred": _assignment_handler("assignment.transferred"),
        "assignment.progressed": _assignment_handler("assignment.progressed"),
        "assignment.arbitration_requested": _assignment_handler("assignment.arbitration_requested"),
        "assignment.resolved": _assignment_handler("assignment.resolved", apply=_resolve),
        "assignment.extension_granted": _assignment_handler(
            "assignment.extension_granted", payloads.ExtensionGranted, _extend
        ),
    }
