"""The consumer's handlers: what intake learns back from routing and supervision.

intake keeps two things from other services' events: a copy of routing's unit
directory (for supervisors' jurisdictions and checking the units a clerk names),
and each case's progress (open → routed → resolved → closed) with the unit that
answers for it and its due date, extensions included (for queries and the Open311
face). Every handler is idempotent
(the consumer's inbox) and order-tolerant: a unit snapshot applies only if its
revision is newer, a case's status only moves forward — except for a reopening (the
visitor not satisfied with the answer), told by its time: the answer given before it no
longer stands (the case is ``reopened``), a lead's routing after it sends the case back
to work (``routed``), an answer given after it resolves the case again. Handlers never
commit.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping

from eventbus.consumer import Handler
from eventbus.envelope import ReceivedEvent
from eventbus.unit_of_work import UnitOfWork
from intake import inbound, models

log = logging.getLogger(__name__)


def handlers(runtime=None) -> Mapping[str, Handler]:
    """Return the handlers by routing key; their keys are the queue's bindings."""
    return {
        "unit.changed": on_unit_changed,
        "case.routed": on_case_routed,
        "assignment.resolved": on_assignment_resolved,
        "assignment.extension_granted": on_extension_granted,
        "case.closed": on_case_closed,
        "case.reopened": on_case_reopened,
    }


def on_unit_changed(uow: UnitOfWork, event: ReceivedEvent) -> None:
    """Keep the local copy of a unit, unless a newer revision is already there."""
    data = inbound.load(inbound.UnitChangedIn, event, subject="code")
    unit = uow.session.get(models.Unit, data["code"])
    if unit is None:
        uow.session.add(models.Unit(**data))
        return
    if data["revision"] <= unit.revision:
        return  # a stale or repeated snapshot
    for name, value in data.items():
        setattr(unit, name, value)


def _case(uow: UnitOfWork, event: ReceivedEvent, case_id: str) -> models.Case | None:
    case = uow.session.get(models.Case, case_id, with_for_update=True)
    if case is None:
        # Not a case intake registered (another deployment's, or a test's): nothing to keep.
        log.warning("event about an unknown case ignored", extra={"event_id": event.id})
    return case


def _report(uow: UnitOfWork, case_id: str, assignment_id: str) -> models.AssignmentReport:
    """Return what intake keeps of an assignment of a case (a new, empty one at first)."""
    report = uow.session.get(models.AssignmentReport, (case_id, assignment_id))
    if report is None:
        report = models.AssignmentReport(case_id=case_id, assignment_id=assignment_id)
        uow.session.add(report)
    return report


def _advance(case: models.Case, status: str) -> None:
    if models.STATUS_RANK[status] > models.STATUS_RANK.get(case.status, 0):
        case.status = status


def _rejected(case: models.Case, answered_at: dt.datetime) -> bool:
    """Whether an answer given then is one a reopening set aside (given at or before it)."""
    return case.reopened_at is not None and answered_at <= case.reopened_at


def on_case_routed(uow: UnitOfWork, event: ReceivedEvent) -> None:
    """Record which unit answers for a case (the lead), and routing's due date."""
    data = inbound.load(inbound.CaseRoutedIn, event, subject="case_id")
    case = _case(uow, event, data["case_id"])
    if case is None or data["role"] != "lead":
        # A co-handler's routing names no lead: its answer, whenever it comes, is kept
        # with its assignment and never resolves the case (on_assignment_resolved).
        return
    # A transfer routes the case again: the latest routing names the responsible unit.
    if case.routed_at is None or data["routed_at"] >= case.routed_at:
        case.responsible_unit = data["unit"]
        case.lead_assignment_id = data["assignment_id"]
        case.routed_at = data["routed_at"]
        if data["due_at"] is not None:
            case.due_at = data["due_at"]
        case.updated_at = max(filter(None, [case.updated_at, data["routed_at"]]))
        resolved_at = case.resolved_at
        if case.status == models.RESOLVED and resolved_at and resolved_at < data["routed_at"]:
            # Routed again after its answer: the visitor was unsatisfied, supervision
            # reopened the case and routing sent it back (the reopening itself may still
            # be on its way). It waits for an answer again (and a returning visitor is a
            # repeat).
            case.status = models.ROUTED
            case.resolved_at = None
        elif case.status == models.REOPENED and data["routed_at"] >= case.reopened_at:
            # Routing sent the reopened case back to a unit: it is worked on as routed.
            case.status = models.ROUTED
    _advance(case, models.ROUTED)
    report = uow.session.get(models.AssignmentReport, (case.id, case.lead_assignment_id))
    if report is None:
        return
    _extend(case, report)
    if (
        report.resolved_at is not None
        and case.status == models.ROUTED
        and not _rejected(case, report.resolved_at)
    ):
        # The lead's answer came before this routing: the case was resolved then.
        case.resolved_at = report.resolved_at
        case.updated_at = max(filter(None, [case.updated_at, report.resolved_at]))
        _advance(case, models.RESOLVED)


def on_assignment_resolved(uow: UnitOfWork, event: ReceivedEvent) -> None:
    """Mark a case resolved when its lead unit answered; a co-handler's answer never does.

    The answer resolves the case at once if it is the lead's: its assignment is the lead
    intake knows, or, none known yet, the event says ``"role": "lead"``. Otherwise it is
    kept with its assignment, and the lead's ``case.routed`` that names that assignment,
    if one ever does, resolves the case (see :func:`on_case_routed`). An answer without a
    role (published before routing carried it) is taken for the lead's only then: by the
    time intake hears it, the co-handler's routing may be as late as the lead's.
    """
    data = inbound.load(inbound.AssignmentResolvedIn, event, subject="case_id")
    case = _case(uow, event, data["case_id"])
    if case is None:
        return
    # Kept per assignment: whichever assignment turns out to be the lead, its answer is here.
    report = _report(uow, case.id, data["assignment_id"])
    if report.resolved_at is None:
        report.resolved_at = data["occurred_at"]
    if data["role"] == "co":
        return  # a co-handling unit's (协办) part: the lead unit answers for the case
    if case.lead_assignment_id is None and data["role"] != "lead":
        return  # whose it is, the routing that names the lead tells
    if case.lead_assignment_id and case.lead_assignment_id != data["assignment_id"]:
        # A co-handling unit's part, an assignment since transferred away, or the answer
        # of a new lead whose routing is still on its way: that routing resolves the case.
        return
    if case.responsible_unit is None:
        case.responsible_unit = data["unit"]
    if _rejected(case, data["occurred_at"]):
        # The answer the visitor rejected, delivered after the reopening: it stays reopened.
        return
    case.resolved_at = data["occurred_at"]
    case.updated_at = max(filter(None, [case.updated_at, data["occurred_at"]]))
    if case.status == models.REOPENED:
        case.status = models.RESOLVED  # answered again after the reopening
    _advance(case, models.RESOLVED)


def on_extension_granted(uow: UnitOfWork, event: ReceivedEvent) -> None:
    """Move the case's due date when routing granted its lead assignment more time."""
    data = inbound.load(inbound.ExtensionGrantedIn, event, subject="case_id")
    case = _case(uow, event, data["case_id"])
    if case is None:
        return
    # Kept per assignment: one whose routing is still on its way extends the case when
    # that routing names it the lead; a co-handler's extension is its own part's.
    report = _report(uow, case.id, data["assignment_id"])
    if report.extended_due_at is None or data["due_at"] > report.extended_due_at:
        report.extended_due_at = data["due_at"]
    if case.lead_assignment_id == data["assignment_id"]:
        _extend(case, report)
        case.updated_at = max(filter(None, [case.updated_at, data["occurred_at"]]))


def _extend(case: models.Case, report: models.AssignmentReport) -> None:
    # Extensions only add time, and a routing delivered again does not take it back.
    if report.extended_due_at is not None and (
        case.due_at is None or report.extended_due_at > case.due_at
    ):
        case.due_at = report.extended_due_at


def on_case_closed(uow: UnitOfWork, event: ReceivedEvent) -> None:
    """Close a case once supervision closed it (the visitor's feedback or its deadline)."""
    data = inbound.load(inbound.CaseClosedIn, event, subject="case_id")
    case = _case(uow, event, data["case_id"])
    if case is None:
        return
    case.closed_at = data["occurred_at"]
    case.updated_at = max(filter(None, [case.updated_at, data["occurred_at"]]))
    _advance(case, models.CLOSED)


def on_case_reopened(uow: UnitOfWork, event: ReceivedEvent) -> None:
    """Show a case worked on again once supervision reopened it (the visitor not satisfied).

    A case resolved by its unit or answered on the spot is ``reopened`` from then on, its
    answer (``resolved_at``) no longer standing, until a lead's routing given after the
    reopening reaches intake (routing sends it back: ``routed``) or an answer given after it
    (resolved again). Delivered after those, the reopening changes nothing but
    ``reopened_at``; a closed case stays closed (supervision closes a case only after the
    visitor's last word, so every reopening is older than the close). Only the latest
    reopening counts: an earlier one delivered late is ignored.
    """
    data = inbound.load(inbound.CaseReopenedIn, event, subject="case_id")
    case = _case(uow, event, data["case_id"])
    if case is None:
        return
    at = data["occurred_at"]
    if case.reopened_at is not None and at <= case.reopened_at:
        return  # this reopening again, or an earlier one: the later one stands
    case.reopened_at = at
    case.updated_at = max(filter(None, [case.updated_at, at]))
    if case.status == models.CLOSED:
        return
    if case.status == models.RESOLVED and case.resolved_at and case.resolved_at > at:
        return  # answered again after the reopening (its news came first): resolved
    if case.status == models.ROUTED and case.routed_at and case.routed_at >= at:
        return  # routing has already sent it back: worked on, as routed
    # The answer it rejects (given, or still on its way to intake) no longer stands.
    case.status = models.REOPENED
    case.resolved_at = None
