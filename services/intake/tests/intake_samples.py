"""Events as routing and supervision publish them, and a way to apply them as the consumer does."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from eventbus import envelope
from eventbus.envelope import OutgoingEvent
from intake.handlers import handlers
from servicekit.runtime import Runtime

CST = dt.timezone(dt.timedelta(hours=8))


def unit_changed(
    code: str, parent: str | None, *, revision: int = 1, level: str = "township", **overrides: Any
) -> OutgoingEvent:
    """Return routing's unit.changed snapshot of a unit."""
    data = {
        "code": code,
        "name": f"unit {code}",
        "level": level,
        "parent": parent,
        "area": parent or code,
        "leader": "李书记",
        "active": True,
        "revision": revision,
        **overrides,
    }
    return envelope.build(service="routing", routing_key="unit.changed", subject=code, data=data)


# A slice of the directory: the city, the Longwen district with its township and
# organisation department, and the Xiangcheng district.
DIRECTORY = [
    ("city", None, "city"),
    ("city-org", "city", "city"),
    ("lw", "city", "county"),
    ("lw-org", "lw", "county"),
    ("lw-buwen", "lw", "township"),
    ("lw-guokeng", "lw", "township"),
    ("xc", "city", "county"),
    ("xc-org", "xc", "county"),
]


def directory_events() -> list[OutgoingEvent]:
    """Return unit.changed events publishing :data:`DIRECTORY`."""
    return [unit_changed(code, parent, level=level) for code, parent, level in DIRECTORY]


def case_routed(
    case_id: str,
    case_number: str,
    unit: str,
    *,
    routed_at: dt.datetime,
    due_at: dt.datetime | None = None,
    role: str = "lead",
    assignment_id: str | None = None,
    **overrides: Any,
) -> OutgoingEvent:
    """Return routing's case.routed of an assignment."""
    data = {
        "case_id": case_id,
        "case_number": case_number,
        "assignment_id": assignment_id or str(uuid.uuid4()),
        "unit": unit,
        "role": role,
        "routed_at": routed_at.isoformat(),
        "due_at": (due_at or routed_at + dt.timedelta(days=31)).isoformat(),
        "category": "demolition_compensation",
        "summary": "拆迁补偿金未到位",
        "details": None,
        "location": None,
        "receiving_unit": "city-org",
        "channel": "night_talk",
        "confidential": False,
        "reason": "rule",
        **overrides,
    }
    return envelope.build(service="routing", routing_key="case.routed", subject=case_id, data=data)


def assignment_resolved(
    case_id: str,
    case_number: str,
    unit: str,
    assignment_id: str,
    *,
    at: dt.datetime,
    role: str | None = None,
) -> OutgoingEvent:
    """Return routing's assignment.resolved (with the assignment's role if given: events
    published before routing carried it have none)."""
    data = {
        "case_id": case_id,
        "case_number": case_number,
        "assignment_id": assignment_id,
        "unit": unit,
        "occurred_at": at.isoformat(),
        "by": f"{unit}:clerk",
        "answer": "已补发",
    }
    if role is not None:
        data["role"] = role
    return envelope.build(
        service="routing", routing_key="assignment.resolved", subject=case_id, data=data
    )


def case_closed(case_id: str, case_number: str, *, at: dt.datetime) -> OutgoingEvent:
    """Return supervision's case.closed."""
    data = {
        "case_id": case_id,
        "case_number": case_number,
        "outcome": "satisfied",
        "occurred_at": at.isoformat(),
    }
    return envelope.build(
        service="supervision", routing_key="case.closed", subject=case_id, data=data
    )


def case_reopened(
    case_id: str,
    case_number: str,
    *,
    at: dt.datetime,
    unit: str = "lw-buwen",
    reason: str = "the visitor is not satisfied with the resolution",
) -> OutgoingEvent:
    """Return supervision's case.reopened (the visitor was not satisfied with the answer)."""
    data = {
        "case_id": case_id,
        "case_number": case_number,
        "unit": unit,
        "reason": reason,
        "occurred_at": at.isoformat(),
    }
    return envelope.build(
        service="supervision", routing_key="case.reopened", subject=case_id, data=data
    )


def consume(runtime: Runtime, *events: OutgoingEvent) -> None:
    """Apply events exactly as the consumer does: inbox check, handler, inbox row, commit."""
    for event in events:
        incoming = envelope.decode(event.properties(), event.body, event.routing_key)
        handler = handlers(runtime)[event.routing_key]
        with runtime.unit_of_work() as uow:
            if not uow.claim_application(incoming.id, "intake", incoming.type):
                continue
            handler(uow, incoming)
            uow.commit()
