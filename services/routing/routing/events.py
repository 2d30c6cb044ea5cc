"""The integration events routing publishes, built from its domain events.

Payloads here are routing's own contract; each consumer keeps its own schema of
what it reads. Every event goes on ``nighttalk.events``; the ones a partner must
hear about get a copy (its own event id, same type) on ``nighttalk.partners`` with
the routing key ``<unit>.<event>``, so it lands in ``partner.<unit>``. No payload
carries the visitor's identity: routing never receives it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from eventbus import envelope, names
from routing import models

SERVICE = "routing"


def iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.isoformat()


def assignment_data(assignment: models.Assignment) -> dict[str, Any]:
    """Return the ``case.routed`` payload of an assignment."""
    return {
        "case_id": assignment.case_id,
        "case_number": assignment.case_number,
        "assignment_id": assignment.id,
        "unit": assignment.unit,
        "role": assignment.role,
        "routed_at": iso(assignment.routed_at),
        "due_at": iso(assignment.due_at),
        "category": assignment.category,
        "summary": assignment.summary,
        "details": assignment.details,
        "location": assignment.location,
        "receiving_unit": assignment.receiving_unit,
        "channel": assignment.channel,
        "confidential": assignment.confidential,
        "reason": assignment.reason,
    }


def unit_data(unit: models.Unit) -> dict[str, Any]:
    """Return the ``unit.changed`` payload: the unit's full snapshot and revision."""
    return {
        "code": unit.code,
        "name": unit.name,
        "level": unit.level,
        "parent": unit.parent,
        "area": unit.area,
        "leader": unit.leader,
        "active": unit.active,
        "revision": unit.revision,
    }


def action_data(event: models.AssignmentActed) -> dict[str, Any]:
    """Return an ``assignment.*`` payload: the common fields and the action's own.

    ``role`` (lead or co) tells a co-handling unit's (协办) acceptance, answer or return
    — its part, internal — from the lead's, which is the case's.
    """
    assignment = event.assignment
    return {
        "case_id": assignment.case_id,
        "case_number": assignment.case_number,
        "assignment_id": assignment.id,
        "unit": assignment.unit,
        "role": assignment.role,
        "occurred_at": iso(event.occurred_at),
        "by": event.by,
        **event.extra,
    }


def to_integration(event: Any) -> list[envelope.OutgoingEvent]:
    """Return the integration events that announce a domain event."""
    match event:
        case models.CaseRouted(assignment=assignment, partner_queue=partner_queue):
            data = assignment_data(assignment)
            out = [_build("case.routed", assignment.case_id, data)]
            if partner_queue:
                out.append(_partner_copy(assignment.unit, "case.routed", assignment.case_id, data))
            return out
        case models.AssignmentActed(assignment=assignment, action=action):
            key = f"assignment.{action}"
            data = action_data(event)
            out = [_build(key, assignment.case_id, data)]
            if event.partner_copy:
                out.append(_partner_copy(assignment.unit, key, assignment.case_id, data))
            return out
        case models.UnitChanged(unit=unit):
            return [_build("unit.changed", unit.code, unit_data(unit))]
    raise TypeError(f"no integration event for {event!r}")


def _build(routing_key: str, subject: str, data: dict[str, Any]) -> envelope.OutgoingEvent:
    return envelope.build(service=SERVICE, routing_key=routing_key, subject=subject, data=data)


def _partner_copy(
    unit: str, routing_key: str, subject: str, data: dict[str, Any]
) -> envelope.OutgoingEvent:
    return envelope.build(
        service=SERVICE,
        routing_key=routing_key,
        subject=subject,
        data=data,
        exchange=names.PARTNERS_EXCHANGE,
        amqp_routing_key=f"{unit}.{routing_key}",
    )
