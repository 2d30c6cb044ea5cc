"""Route a registered case: the use case behind the ``case.registered`` handler.

The assignment and its outgoing events are written in the caller's unit of work,
so they commit together with the consumer's inbox row, or not at all.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import select

from eventbus.unit_of_work import UnitOfWork
from routing import events, models, rules
from routing.directory import SessionDirectory

log = logging.getLogger(__name__)


def lead_assignment(session, case_id: str) -> models.Assignment | None:
    """Return the lead assignment of a case, if it has been routed."""
    return session.scalars(
        select(models.Assignment).where(
            models.Assignment.case_id == case_id, models.Assignment.role == models.LEAD
        )
    ).first()


def facts_of(case: dict[str, Any]) -> rules.CaseFacts:
    """Return what the routing rules need from a checked ``case.registered`` payload."""
    accused = case.get("accused") or {}
    return rules.CaseFacts(
        action=case["disposition"]["action"],
        category=case["category"],
        receiving_unit=case["unit"],
        sign_over_unit=case["disposition"].get("unit"),
        accused_unit=accused.get("unit"),
        accused_person=accused.get("person"),
        location=case.get("location"),
    )


def route_case(
    uow: UnitOfWork,
    case: dict[str, Any],
    *,
    default_unit: str,
    now: dt.datetime | None = None,
) -> models.Assignment | None:
    """Hand a registered case to its responsible unit; return the new assignment.

    Returns None, changing nothing, for a case resolved on the spot or one already
    routed (the same case announced again under another event id).
    """
    session = uow.session
    facts = facts_of(case)
    if facts.action == rules.RESOLVED_ON_SPOT:
        return None
    if lead_assignment(session, case["case_id"]) is not None:
        log.info("case already routed", extra={"case_id": case["case_id"]})
        return None

    choice = rules.choose_unit(facts, SessionDirectory(session), default=default_unit)
    routed_at = now or dt.datetime.now(dt.UTC)
    assignment = models.Assignment(
        case_id=case["case_id"],
        case_number=case["case_number"],
        unit=choice.unit,
        role=models.LEAD,
        status=models.ASSIGNED,
        routed_at=routed_at,
        due_at=rules.due_date(routed_at),
        category=case["category"],
        summary=case["summary"],
        details=case.get("details"),
        location=case.get("location"),
        receiving_unit=case["unit"],
        channel=case["channel"],
        accused_unit=facts.accused_unit,
        confidential=choice.confidential,
        reason=choice.reason,
    )
    session.add(assignment)
    # Flush now: if a concurrent consumer routed the same case under another event id,
    # the unique lead index refuses this row; the consumer retries the event, and the
    # retry finds the lead assignment above and changes nothing.
    session.flush()
    assignment.record(models.CaseRouted(assignment))
    for domain_event in assignment.events:
        for outgoing in events.to_integration(domain_event):
            uow.emit(outgoing)
    log.info(
        "case routed",
        extra={
            "case_id": assignment.case_id,
            "unit": assignment.unit,
            "reason": choice.reason,
            "assignment_id": assignment.id,
        },
    )
    return assignment
