"""Events as intake and routing publish them, and a way to apply them as the consumer does."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from typing import Any

from sqlalchemy import select

from eventbus import envelope
from eventbus.envelope import OutgoingEvent, ReceivedEvent
from servicekit.auth import mint
from servicekit.runtime import Runtime
from supervision import models
from supervision.handlers import handlers

# Tests of the API and the sweep read what a transaction committed to the outbox (what the
# relay publishes): no broker listens here, so publishing right after commit fails fast and
# the rows stay. The consumer tests exercise the real broker.
NO_BROKER = "amqp://guest:guest@127.0.0.1:1/%2F"
CST = dt.timezone(dt.timedelta(hours=8))
RECEIVED_AT = dt.datetime(2026, 12, 15, 17, 5, tzinfo=CST)
INTAKE_DUE_AT = dt.datetime(2027, 1, 15, 9, 5, tzinfo=dt.UTC)
ROUTED_AT = dt.datetime(2026, 12, 15, 9, 30, tzinfo=dt.UTC)
ROUTED_DUE_AT = dt.datetime(2027, 1, 20, 16, 0, tzinfo=dt.UTC)
FOLLOWED_UP_AT = dt.datetime(2027, 1, 15, 18, 0, tzinfo=CST)


def iso(value: dt.datetime | str | None) -> str | None:
    """Return an instant as ISO 8601; strings (deliberately bad ones too) pass as they are."""
    return value.isoformat() if isinstance(value, dt.datetime) else value


_numbers = itertools.count(1)


def new_case(unit: str = "city-org", seq: int | None = None) -> tuple[str, str]:
    """Return a fresh (case id, case number) pair, its number unique in the test session."""
    seq = seq if seq is not None else next(_numbers)
    return str(uuid.uuid4()), f"{unit}-20261215-{seq:04d}"


def case_registered(
    case_id: str,
    case_number: str,
    /,
    *,
    unit: str = "city-org",
    status: str = "open",
    time: dt.datetime = RECEIVED_AT,
    **overrides: Any,
) -> OutgoingEvent:
    """Return intake's case.registered of a case."""
    resolved = status == "resolved_on_spot"
    data = {
        "case_id": case_id,
        "case_number": case_number,
        "visit_id": str(uuid.uuid4()),
        "unit": unit,
        "channel": "night_talk",
        "received_at": iso(RECEIVED_AT),
        "category": "demolition_compensation",
        "summary": "拆迁补偿金未到位",
        "details": None,
        "location": "步文镇",
        "accused": {"unit": "lw-buwen", "person": None},
        "disposition": (
            {"action": "resolved_on_spot", "answer": "镇里当场同意补发"}
            if resolved
            else {"action": "route"}
        ),
        "status": status,
        "due_at": None if resolved else iso(INTAKE_DUE_AT),
        "repeat_of": None,
        "visitor_ref": "3f" * 32,
    }
    data.update(overrides)
    return envelope.build(
        service="intake", routing_key="case.registered", subject=case_id, data=data, time=time
    )


def case_resolved_on_spot(
    case_id: str, case_number: str, /, *, unit: str = "city-org", **overrides: Any
) -> OutgoingEvent:
    """Return intake's case.resolved_on_spot of a case."""
    data = {
        "case_id": case_id,
        "case_number": case_number,
        "unit": unit,
        "answer": "镇里当场同意补发",
        "resolved_at": iso(RECEIVED_AT),
    }
    data.update(overrides)
    return envelope.build(
        service="intake",
        routing_key="case.resolved_on_spot",
        subject=case_id,
        data=data,
        time=RECEIVED_AT,
    )


def case_routed(
    case_id: str,
    case_number: str,
    /,
    *,
    unit: str = "lw-buwen",
    receiving_unit: str = "city-org",
    routed_at: dt.datetime = ROUTED_AT,
    due_at: dt.datetime = ROUTED_DUE_AT,
    assignment_id: str | None = None,
    **overrides: Any,
) -> OutgoingEvent:
    """Return routing's case.routed of a case (the copy on the events exchange)."""
    data = {
        "case_id": case_id,
        "case_number": case_number,
        "assignment_id": assignment_id or str(uuid.uuid4()),
        "unit": unit,
        "role": "lead",
        "routed_at": iso(routed_at),
        "due_at": iso(due_at),
        "category": "demolition_compensation",
        "summary": "拆迁补偿金未到位",
        "details": None,
        "location": "步文镇",
        "receiving_unit": receiving_unit,
        "channel": "night_talk",
        "confidential": False,
    }
    data.update(overrides)
    return envelope.build(
        service="routing",
        routing_key="case.routed",
        subject=case_id,
        data=data,
        time=routed_at if isinstance(routed_at, dt.datetime) else ROUTED_AT,
    )


def visit_registered(visit_id: str, case_ids: list[str], /, **overrides: Any) -> OutgoingEvent:
    """Return intake's visit.registered of a batch."""
    data = {
        "visit_id": visit_id,
        "unit": "city-org",
        "channel": "night_talk",
        "received_at": iso(RECEIVED_AT),
        "headcount": 5,
        "case_ids": case_ids,
        "follow_ups": ["city-org-20261115-0042"],
        "visitor_ref": "3f" * 32,
    }
    data.update(overrides)
    return envelope.build(
        service="intake",
        routing_key="visit.registered",
        subject=visit_id,
        data=data,
        time=RECEIVED_AT,
    )


def visit_followed_up(case_id: str, case_number: str, /, **overrides: Any) -> OutgoingEvent:
    """Return intake's visit.followed_up: a repeat visit about a case."""
    data = {
        "visit_id": str(uuid.uuid4()),
        "case_id": case_id,
        "case_number": case_number,
        "unit": "lw-org",
        "channel": "daily",
        "received_at": iso(FOLLOWED_UP_AT),
    }
    data.update(overrides)
    return envelope.build(
        service="intake",
        routing_key="visit.followed_up",
        subject=case_id,
        data=data,
        time=FOLLOWED_UP_AT,
    )


def assignment_event(routing_key: str, case_id: str, number: str, assignment_id: str, **data):
    """Return one of routing's assignment.* events."""
    occurred_at = data.pop("occurred_at", dt.datetime(2026, 12, 1, 10, 0, tzinfo=CST))
    payload = {
        "case_id": case_id,
        "case_number": number,
        "assignment_id": assignment_id,
        "unit": "lw-buwen",
        "occurred_at": occurred_at.isoformat(),
        "by": "lw-buwen:clerk",
        **data,
    }
    return envelope.build(
        service="routing", routing_key=routing_key, subject=case_id, data=payload, time=occurred_at
    )


def unit_changed(code: str, *, parent: str | None, leader: str, revision: int = 1, **extra):
    """Return routing's unit.changed snapshot of a unit."""
    data = {
        "code": code,
        "name": code,
        "level": extra.pop("level", "township"),
        "parent": parent,
        "area": "longwen",
        "leader": leader,
        "active": True,
        "revision": revision,
        **extra,
    }
    return envelope.build(service="routing", routing_key="unit.changed", subject=code, data=data)


def bearer(unit: str, *roles: str) -> dict[str, str]:
    """Return the Authorization header of a token for a unit and roles."""
    return {"Authorization": f"Bearer {mint(unit, list(roles))}"}


ADMIN = bearer("city", "admin")


def received(event: OutgoingEvent) -> ReceivedEvent:
    """Decode an outgoing event as the consumer would receive it."""
    return envelope.decode(event.properties(), event.body, event.routing_key)


def handle(runtime: Runtime, event: OutgoingEvent) -> None:
    """Run the event's handler in a unit of work and commit, bypassing the inbox."""
    handler = handlers(runtime)[event.routing_key]
    with runtime.unit_of_work() as uow:
        handler(uow, received(event))
        uow.commit()


def consume(runtime: Runtime, event: OutgoingEvent) -> None:
    """Apply the event exactly as the consumer does: inbox check, handler, inbox row, commit."""
    consume_received(runtime, received(event))


def consume_received(runtime: Runtime, incoming: ReceivedEvent) -> None:
    """Apply a received event as the consumer does: inbox check, handler, inbox row, commit."""
    handler = handlers(runtime)[incoming.routing_key]
    with runtime.unit_of_work() as uow:
        if not uow.claim_application(incoming.id, "supervision", incoming.type):
            return
        handler(uow, incoming)
        uow.commit()


def case_row(runtime: Runtime, case_id: str) -> dict[str, Any] | None:
    """Return the supervised case as a dict of its columns, without the bookkeeping ones."""
    with runtime.sessions() as session:
        case = session.get(models.SupervisedCase, case_id)
        if case is None:
            return None
        row = {c.name: getattr(case, c.name) for c in models.SupervisedCase.__table__.columns}
    return {key: value for key, value in row.items() if key in CASE_COLUMNS}


# The columns of a case as intake and routing shape it (the clock, the ladder and the
# feedback have tests of their own).
CASE_COLUMNS = (
    "case_id",
    "case_number",
    "receiving_unit",
    "responsible_unit",
    "category",
    "channel",
    "status",
    "received_at",
    "registered",
    "routed_at",
    "due_at",
    "resolved_at",
    "assignment_id",
    "repeat_of",
)


def timeline(runtime: Runtime, case_id: str) -> list[tuple]:
    """Return a case's timeline as (event id, type, occurred_at, summary), in reading order."""
    entry = models.TimelineEntry
    with runtime.sessions() as session:
        return [
            (e.event_id, e.event_type, e.occurred_at, e.summary)
            for e in session.scalars(
                select(entry)
                .where(entry.case_id == case_id)
                .order_by(entry.occurred_at, entry.event_id)
            )
        ]
