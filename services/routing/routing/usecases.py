"""Routing's use cases: route a registered case, and what partners and supervisors do to it.

Each writes its state change and outgoing events in the caller's unit of work, so
they commit together (with the consumer's inbox row, for event handlers) or not at
all. ``_hand_over`` is the one place that creates an assignment, and it always
passes the choice through ``rules.apply_confidentiality``.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import replace
from typing import Any

from environs import env
from marshmallow.validate import Range
from sqlalchemy import func, select

from eventbus import names
from eventbus.unit_of_work import UnitOfWork
from routing import access, events, models, rules, webhooks
from routing.directory import SessionDirectory
from servicekit.auth import Principal

log = logging.getLogger(__name__)

POLICY = "policy"
MEETING = "joint-meeting"
# The assignment actions that record a meeting's decision on the lead it found, dated
# when the meeting decided: applied, or superseded by a later decision applied first.
MEETING_DECIDED = "meeting_decision"
MEETING_SUPERSEDED = "meeting_decision_superseded"


class ActionError(Exception):
    """An action the caller may not take; ``status`` is the HTTP answer."""

    status = 409

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class Conflict(ActionError):
    """The assignment's state forbids the action (an illegal transition)."""


class NotFound(ActionError):
    status = 404


class Forbidden(ActionError):
    status = 403


class Invalid(ActionError):
    """A field names something that cannot be (an unknown or inactive unit)."""

    status = 422


def max_moves() -> int:
    """Return how many returns and transfers a case may have before arbitration."""
    return env.int("ROUTING_MAX_MOVES", 2, validate=Range(min=0))


def auto_extension_days() -> int:
    """Return the extension granted by policy, once per assignment, without asking."""
    return env.int("ROUTING_AUTO_EXTENSION_DAYS", 15, validate=Range(min=0))


class SessionRules:
    """The routing rules as the database holds them."""

    def __init__(self, session) -> None:
        self.session = session

    def get(self, category: str, area: str) -> rules.RuleEntry | None:
        row = self.session.scalars(
            select(models.Rule).where(models.Rule.category == category, models.Rule.area == area)
        ).first()
        if row is None:
            return None
        return rules.RuleEntry(row.category, row.area, row.unit, row.due_days)


def lead_assignment(session, case_id: str) -> models.Assignment | None:
    """Return the current lead assignment of a case, if it has been routed."""
    return session.scalars(
        select(models.Assignment).where(
            models.Assignment.case_id == case_id,
            models.Assignment.role == models.LEAD,
            models.Assignment.superseded_by.is_(None),
        )
    ).first()


def locked_lead(session, case_id: str) -> models.Assignment | None:
    """Return the current lead assignment of a case, locked until the transaction ends.

    Supervision's decisions change the lead as partners' actions do (``_load``): locked,
    so that neither acts on what it read before the other committed.
    """
    while True:
        lead = lead_assignment(session, case_id)
        if lead is None:
            return None
        session.refresh(lead, with_for_update=True)
        if lead.superseded_by is None:
            return lead
        # Superseded while this waited for the lock: the next read finds the new lead.


def _ever_routed(session, case_id: str) -> bool:
    return (
        session.scalars(
            select(models.Assignment.id).where(models.Assignment.case_id == case_id).limit(1)
        ).first()
        is not None
    )


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


def facts_of_assignment(assignment: models.Assignment) -> rules.CaseFacts:
    """Return the facts of a routed case again, from its assignment."""
    return rules.CaseFacts(
        action=rules.ROUTE,
        category=assignment.category,
        receiving_unit=assignment.receiving_unit,
        accused_unit=assignment.accused_unit,
        # Routing keeps no accused person, only that the case is confidential.
        accused_person="(withheld)" if assignment.confidential else None,
        location=assignment.location,
    )


def _emit(uow: UnitOfWork, domain_event: Any) -> None:
    """Write a domain event's integration events, and its partner copy where the unit reads it.

    The AMQP copy and the webhook delivery are decided apart: most units read by webhook
    (or the inbox) and have no partner queue, and a few do both.
    """
    now = dt.datetime.now(dt.UTC)
    for outgoing in events.to_integration(domain_event):
        if outgoing.exchange != names.PARTNERS_EXCHANGE:
            uow.emit(outgoing)
            continue
        unit = outgoing.routing_key.split(".", 1)[0]
        if _reads_queue(uow.session, unit):
            uow.emit(outgoing)
        # A unit with a webhook gets its partner copies POSTed, from this transaction.
        webhooks.enqueue(uow.session, outgoing, now)


def _hand_over(
    uow: UnitOfWork,
    case: dict[str, Any],
    facts: rules.CaseFacts,
    choice: rules.Choice,
    *,
    now: dt.datetime,
    moves: int = 0,
    previous: models.Assignment | None = None,
    may_redirect: bool = True,
    role: str = models.LEAD,
    due_at: dt.datetime | None = None,
) -> models.Assignment:
    """Create the case's new lead (or co-handling) assignment for the chosen unit and announce it.

    The only place an assignment is made: confidentiality is applied here, so no path
    can hand a complaint to the unit it accuses or that unit's subtree.
    """
    session = uow.session
    directory = SessionDirectory(session)
    choice = rules.apply_confidentiality(choice, facts, directory, may_redirect=may_redirect)
    target = directory.get(choice.unit)
    if target is None or not target.active:
        raise Invalid(f"unit {choice.unit!r} is unknown or inactive", "unit")
    if previous is not None:
        # Supersede first: the unique index allows one current lead per case.
        previous.superseded_by = "pending"
        _drop_extension_request(previous)
        session.flush()
    assignment = models.Assignment(
        case_id=case["case_id"],
        case_number=case["case_number"],
        unit=choice.unit,
        role=role,
        status=models.ASSIGNED,
        routed_at=now,
        due_at=due_at or rules.due_date(now, choice.due_days),
        category=case["category"],
        summary=case["summary"],
        details=case.get("details"),
        location=case.get("location"),
        receiving_unit=case["unit"],
        channel=case["channel"],
        accused_unit=facts.accused_unit,
        confidential=choice.confidential or (previous is not None and previous.confidential),
        reason=choice.reason[:200],
        moves=moves,
    )
    session.add(assignment)
    # Flush now: if a concurrent consumer routed the same case under another event id,
    # the unique index refuses this row; the consumer retries the event, and the retry
    # finds the case routed and changes nothing.
    session.flush()
    if previous is not None:
        previous.superseded_by = assignment.id
    _emit(uow, models.CaseRouted(assignment, _gets_partner_copies(session, assignment.unit)))
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


def _case_of(assignment: models.Assignment) -> dict[str, Any]:
    return {
        "case_id": assignment.case_id,
        "case_number": assignment.case_number,
        "category": assignment.category,
        "summary": assignment.summary,
        "details": assignment.details,
        "location": assignment.location,
        "unit": assignment.receiving_unit,
        "channel": assignment.channel,
    }


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
    if _ever_routed(session, case["case_id"]):
        log.info("case already routed", extra={"case_id": case["case_id"]})
        return None
    choice = rules.choose_unit(
        facts, SessionDirectory(session), default=default_unit, rules=SessionRules(session)
    )
    return _hand_over(uow, case, facts, choice, now=now or dt.datetime.now(dt.UTC))


# -- partner actions -----------------------------------------------------------------------


def _load(session, assignment_id: str) -> models.Assignment:
    assignment = session.get(models.Assignment, assignment_id, with_for_update=True)
    if assignment is None:
        raise NotFound("no such assignment")
    return assignment


def _ensure_partner(session, principal: Principal, assignment: models.Assignment) -> None:
    """Let only the assignment's unit's partner act; 404 for what the caller cannot read.

    Visibility comes first: a token with the supervisor role too must not learn from a
    403 which unit holds another area's assignment.
    """
    _ensure_in_jurisdiction(session, principal, assignment)
    if assignment.unit == principal.unit and principal.has("partner"):
        return
    raise Forbidden(f"only a partner of {assignment.unit!r} may act on its assignments")


def _ensure_current(assignment: models.Assignment) -> None:
    if assignment.superseded_by is not None:
        raise Conflict(
            f"this assignment was {assignment.status}; the case is now with assignment "
            f"{assignment.superseded_by}"
        )
    if assignment.status == models.ARBITRATION:
        raise Conflict(
            f"the case awaits arbitration by {assignment.supervising_unit!r}; "
            "nothing can be done to it until then"
        )


def _ensure_status(assignment: models.Assignment, allowed: tuple[str, ...], what: str) -> None:
    _ensure_current(assignment)
    if assignment.status not in allowed:
        raise Conflict(f"cannot {what} an assignment that is {assignment.status}: {_hint(what)}")


def _ensure_lead(assignment: models.Assignment, what: str) -> None:
    if assignment.role != models.LEAD:
        raise Conflict(
            f"a co-handling (协办) assignment cannot {what}: the lead unit answers for the "
            "case; return it to decline your part"
        )


def add_co_handler(
    uow: UnitOfWork, assignment_id: str, principal: Principal, unit: str, reason: str
) -> models.Assignment:
    """Ask another unit to co-handle (协办) the case of a lead assignment; return the new one."""
    now = dt.datetime.now(dt.UTC)
    session = uow.session
    lead = _load(session, assignment_id)
    _ensure_partner(session, principal, lead)
    _ensure_status(lead, models.OPEN_STATUSES, "add a co-handling unit to")
    _ensure_lead(lead, "add a co-handling unit")
    if unit == lead.unit:
        raise Invalid("the lead unit cannot co-handle its own case", "unit")
    target = session.get(models.Unit, unit)
    if target is None or not target.active:
        raise Invalid(f"unit {unit!r} is unknown or inactive", "unit")
    already = session.scalars(
        select(models.Assignment.id).where(
            models.Assignment.case_id == lead.case_id,
            models.Assignment.role == models.CO,
            models.Assignment.unit == unit,
            models.Assignment.status.in_(models.OPEN_STATUSES),
        )
    ).first()
    if already is not None:
        raise Conflict(f"{unit!r} already co-handles this case (assignment {already})")
    facts = facts_of_assignment(lead)
    try:
        co = _hand_over(
            uow,
            _case_of(lead),
            facts,
            rules.Choice(unit, f"co-handling for {lead.unit}: {reason}"),
            now=now,
            may_redirect=False,
            role=models.CO,
            # A co-handling unit works to the lead's deadline.
            due_at=lead.due_at,
        )
    except rules.AccusedUnitError as exc:
        raise Conflict(str(exc)) from exc
    _log(session, lead, "co_handler_added", principal.sub, now, f"{unit}: {reason}")
    return co


def _hint(what: str) -> str:
    return {
        "accept": "only an assigned (待签收) one can be accepted",
        "resolve": "accept (签收) it first",
        "report progress on": "accept (签收) it first",
        "return": "it is no longer open",
        "transfer": "it is no longer open",
        "extend": "it is no longer open",
    }.get(what, "not allowed now")


def _drop_extension_request(assignment: models.Assignment) -> None:
    # An assignment that is answered, replaced or awaiting arbitration has no deadline left
    # to move: a request still pending would otherwise be granted on it later.
    assignment.extension_days = None
    assignment.extension_reason = None


def _log(session, assignment, action: str, by: str, now: dt.datetime, text: str | None) -> None:
    session.add(
        models.AssignmentAction(
            assignment_id=assignment.id, action=action, by=by[:100], occurred_at=now, text=text
        )
    )


def _reads_queue(session, code: str) -> bool:
    # AMQP copies go only to units that consume partner.<code>: a copy for a unit
    # without a queue would be unroutable and wait in the outbox for ever.
    unit = session.get(models.Unit, code)
    return bool(unit is not None and unit.amqp)


def _gets_partner_copies(session, code: str) -> bool:
    """Return whether a unit reads partner copies: from its queue, its webhook, or both."""
    return _reads_queue(session, code) or webhooks.registered(session, code)


def _acted(uow, assignment, action, by, now, extra=None, *, partner_copy=False) -> None:
    copy = partner_copy and _gets_partner_copies(uow.session, assignment.unit)
    _emit(
        uow,
        models.AssignmentActed(assignment, action, now, by, extra or {}, copy),
    )


def accept(uow: UnitOfWork, assignment_id: str, principal: Principal) -> models.Assignment:
    """Accept (签收) an assignment: the unit takes the case on."""
    now = dt.datetime.now(dt.UTC)
    assignment = _load(uow.session, assignment_id)
    _ensure_partner(uow.session, principal, assignment)
    _ensure_status(assignment, (models.ASSIGNED,), "accept")
    assignment.status = models.ACCEPTED
    assignment.accepted_at = now
    _log(uow.session, assignment, "accepted", principal.sub, now, None)
    _acted(uow, assignment, "accepted", principal.sub, now, partner_copy=True)
    return assignment


def progress(
    uow: UnitOfWork, assignment_id: str, principal: Principal, note: str
) -> models.Assignment:
    """Report progress on an accepted assignment."""
    now = dt.datetime.now(dt.UTC)
    assignment = _load(uow.session, assignment_id)
    _ensure_partner(uow.session, principal, assignment)
    _ensure_status(assignment, (models.ACCEPTED,), "report progress on")
    _log(uow.session, assignment, "progressed", principal.sub, now, note)
    _acted(uow, assignment, "progressed", principal.sub, now, {"note": note})
    return assignment


def resolve(
    uow: UnitOfWork, assignment_id: str, principal: Principal, answer: str
) -> models.Assignment:
    """Resolve (办结) an accepted assignment with the answer given to the visitor."""
    now = dt.datetime.now(dt.UTC)
    assignment = _load(uow.session, assignment_id)
    _ensure_partner(uow.session, principal, assignment)
    _ensure_status(assignment, (models.ACCEPTED,), "resolve")
    assignment.status = models.RESOLVED
    assignment.resolved_at = now
    assignment.answer = answer
    _drop_extension_request(assignment)
    _log(uow.session, assignment, "resolved", principal.sub, now, answer)
    _acted(uow, assignment, "resolved", principal.sub, now, {"answer": answer})
    return assignment


def _to_arbitration(uow, assignment, principal, now, reason, *, default_unit) -> None:
    supervising = rules.supervising_unit(
        SessionDirectory(uow.session),
        assignment.unit,
        default=default_unit,
        accused=assignment.accused_unit,
    )
    assignment.status = models.ARBITRATION
    assignment.supervising_unit = supervising
    _drop_extension_request(assignment)
    text = f"moved {assignment.moves} times already; {reason}"
    _log(uow.session, assignment, "arbitration_requested", principal.sub, now, text)
    _acted(
        uow,
        assignment,
        "arbitration_requested",
        principal.sub,
        now,
        {"supervising_unit": supervising, "reason": text[:500]},
    )


def return_(
    uow: UnitOfWork, assignment_id: str, principal: Principal, reason: str, *, default_unit: str
) -> models.Assignment:
    """Return (退回) an assignment: the case is not this unit's; its supervisor re-dispatches.

    A case already moved ``ROUTING_MAX_MOVES`` times goes to arbitration instead.
    """
    now = dt.datetime.now(dt.UTC)
    assignment = _load(uow.session, assignment_id)
    _ensure_partner(uow.session, principal, assignment)
    _ensure_status(assignment, models.OPEN_STATUSES, "return")
    if assignment.role == models.CO:
        # A co-handling unit (协办) declines its part; the lead unit keeps the case.
        assignment.status = models.RETURNED
        _log(uow.session, assignment, "returned", principal.sub, now, reason)
        _acted(uow, assignment, "returned", principal.sub, now, {"reason": reason})
        return assignment
    directory = SessionDirectory(uow.session)
    facts = facts_of_assignment(assignment)
    target = rules.return_target(directory, facts, assignment.unit, default=default_unit)
    # A return that would bring the case straight back (the discipline commission
    # returning a complaint about the city, which no other unit may take) is arbitrated.
    if assignment.moves >= max_moves() or target is None:
        _to_arbitration(
            uow, assignment, principal, now, f"return: {reason}", default_unit=default_unit
        )
        return assignment
    assignment.status = models.RETURNED
    _log(uow.session, assignment, "returned", principal.sub, now, reason)
    _acted(uow, assignment, "returned", principal.sub, now, {"reason": reason})
    choice = rules.Choice(target, f"returned by {assignment.unit}: {reason}")
    return _hand_over(
        uow,
        _case_of(assignment),
        facts,
        choice,
        now=now,
        moves=assignment.moves + 1,
        previous=assignment,
    )


def transfer(
    uow: UnitOfWork,
    assignment_id: str,
    principal: Principal,
    to_unit: str,
    reason: str,
    *,
    default_unit: str,
) -> models.Assignment:
    """Transfer (转办) an assignment onward to the unit responsible; return the new one.

    Refused (409) to the unit the case accuses or its subtree; a case already moved
    ``ROUTING_MAX_MOVES`` times goes to arbitration instead.
    """
    now = dt.datetime.now(dt.UTC)
    session = uow.session
    assignment = _load(session, assignment_id)
    _ensure_partner(session, principal, assignment)
    _ensure_status(assignment, models.OPEN_STATUSES, "transfer")
    _ensure_lead(assignment, "transfer")
    if to_unit == assignment.unit:
        raise Invalid("the case is already with this unit", "to_unit")
    target = session.get(models.Unit, to_unit)
    if target is None or not target.active:
        raise Invalid(f"unit {to_unit!r} is unknown or inactive", "to_unit")
    facts = facts_of_assignment(assignment)
    try:
        rules.apply_confidentiality(
            rules.Choice(to_unit, "transfer"),
            facts,
            SessionDirectory(session),
            may_redirect=False,
        )
    except rules.AccusedUnitError as exc:
        raise Conflict(str(exc)) from exc
    if assignment.moves >= max_moves():
        _to_arbitration(
            uow,
            assignment,
            principal,
            now,
            f"transfer to {to_unit}: {reason}",
            default_unit=default_unit,
        )
        return assignment
    assignment.status = models.TRANSFERRED
    _log(session, assignment, "transferred", principal.sub, now, f"{to_unit}: {reason}")
    _acted(
        uow, assignment, "transferred", principal.sub, now, {"to_unit": to_unit, "reason": reason}
    )
    return _hand_over(
        uow,
        _case_of(assignment),
        facts,
        rules.Choice(to_unit, f"transferred by {assignment.unit}: {reason}"),
        now=now,
        moves=assignment.moves + 1,
        previous=assignment,
        may_redirect=False,
    )


def _ensure_in_jurisdiction(session, principal: Principal, assignment: models.Assignment) -> None:
    """Refuse, as if it did not exist, an assignment outside the supervisor's jurisdiction.

    Checked before the assignment's state, so a supervisor of another area learns
    neither that the id exists nor what state it is in.
    """
    if principal.has("admin"):
        return
    query = access.visible_assignments(
        session,
        principal,
        select(models.Assignment.id).where(models.Assignment.id == assignment.id),
    )
    if session.scalar(query) is None:
        raise NotFound("no such assignment for your unit")


def _is_supervisor_of(principal: Principal, supervising: str | None) -> bool:
    return principal.has("admin") or (
        principal.has("supervisor") and supervising is not None and principal.unit == supervising
    )


def arbitrate(
    uow: UnitOfWork, assignment_id: str, principal: Principal, unit: str, reason: str
) -> models.Assignment:
    """Decide an arbitration: the supervising unit names the unit that must handle the case."""
    now = dt.datetime.now(dt.UTC)
    session = uow.session
    assignment = _load(session, assignment_id)
    _ensure_in_jurisdiction(session, principal, assignment)
    if assignment.status != models.ARBITRATION or assignment.superseded_by is not None:
        if not principal.has("admin", "supervisor"):
            raise NotFound("no such assignment for your unit")
        raise Conflict(f"the assignment is {assignment.status}, not awaiting arbitration")
    if not _is_supervisor_of(principal, assignment.supervising_unit):
        raise Forbidden(f"only {assignment.supervising_unit!r} (or an admin) may arbitrate")
    target = session.get(models.Unit, unit)
    if target is None or not target.active:
        raise Invalid(f"unit {unit!r} is unknown or inactive", "unit")
    facts = facts_of_assignment(assignment)
    try:
        rules.apply_confidentiality(
            rules.Choice(unit, "arbitration"), facts, SessionDirectory(session), may_redirect=False
        )
    except rules.AccusedUnitError as exc:
        raise Conflict(str(exc)) from exc
    assignment.status = models.REPLACED
    _log(session, assignment, "arbitrated", principal.sub, now, f"{unit}: {reason}")
    # An arbitrated case starts afresh: its unit may not bounce it again without
    # another arbitration once the limit is spent.
    return _hand_over(
        uow,
        _case_of(assignment),
        facts,
        rules.Choice(unit, f"arbitrated by {assignment.supervising_unit}: {reason}"),
        now=now,
        previous=assignment,
        may_redirect=False,
    )


def request_extension(
    uow: UnitOfWork,
    assignment_id: str,
    principal: Principal,
    days: int,
    reason: str,
    *,
    default_unit: str,
) -> tuple[models.Assignment, bool]:
    """Ask for more time; return (the assignment, whether it was granted at once).

    Policy: the first extension of an assignment, of at most
    ``ROUTING_AUTO_EXTENSION_DAYS`` days, is granted without asking; any other waits
    for the supervising unit.
    """
    now = dt.datetime.now(dt.UTC)
    assignment = _load(uow.session, assignment_id)
    _ensure_partner(uow.session, principal, assignment)
    _ensure_status(assignment, models.OPEN_STATUSES, "extend")
    _ensure_lead(assignment, "extend")
    if assignment.extension_days is not None:
        raise Conflict("an extension request already awaits the supervising unit")
    if assignment.extensions == 0 and days <= auto_extension_days():
        _grant(uow, assignment, days, reason, POLICY, now)
        return assignment, True
    assignment.extension_days = days
    assignment.extension_reason = reason
    assignment.supervising_unit = rules.supervising_unit(
        SessionDirectory(uow.session),
        assignment.unit,
        default=default_unit,
        accused=assignment.accused_unit,
    )
    _log(uow.session, assignment, "extension_requested", principal.sub, now, f"{days}d: {reason}")
    return assignment, False


def _grant(uow, assignment, days: int, reason: str, by: str, now: dt.datetime) -> None:
    assignment.due_at = assignment.due_at + dt.timedelta(days=days)
    assignment.extensions += 1
    assignment.extension_days = None
    assignment.extension_reason = None
    _log(uow.session, assignment, "extension_granted", by, now, f"{days}d: {reason}")
    _acted(
        uow,
        assignment,
        "extension_granted",
        by,
        now,
        {"due_at": events.iso(assignment.due_at), "granted_by": by, "reason": reason},
        partner_copy=True,
    )


def decide_extension(
    uow: UnitOfWork,
    assignment_id: str,
    principal: Principal,
    grant: bool,
    reason: str,
    days: int | None = None,
) -> models.Assignment:
    """Grant or refuse a pending extension request, as the supervising unit."""
    now = dt.datetime.now(dt.UTC)
    assignment = _load(uow.session, assignment_id)
    _ensure_in_jurisdiction(uow.session, principal, assignment)
    pending = (
        assignment.extension_days is not None
        and assignment.superseded_by is None
        and assignment.status in models.OPEN_STATUSES
    )
    if not pending:
        if not principal.has("admin", "supervisor"):
            raise NotFound("no such assignment for your unit")
        if assignment.status not in models.OPEN_STATUSES:
            raise Conflict(
                f"no extension request awaits a decision: the assignment is "
                f"{assignment.status}, and only an open (assigned or accepted) one has a "
                "deadline to move"
            )
        raise Conflict("no extension request awaits a decision on this assignment")
    if not _is_supervisor_of(principal, assignment.supervising_unit):
        raise Forbidden(f"only {assignment.supervising_unit!r} (or an admin) may decide")
    if grant:
        _grant(uow, assignment, days or assignment.extension_days, reason, principal.unit, now)
    else:
        assignment.extension_days = None
        assignment.extension_reason = None
        _log(uow.session, assignment, "extension_refused", principal.sub, now, reason)
    return assignment


# -- supervision's decisions -----------------------------------------------------------------


def reopen(uow: UnitOfWork, data: dict[str, Any], *, default_unit: str) -> models.Assignment | None:
    """Send a reopened case back to its unit with a fresh deadline (``case.reopened``)."""
    session = uow.session
    current = locked_lead(session, data["case_id"])
    if current is None:
        log.warning("reopened case was never routed here", extra={"case_id": data["case_id"]})
        return None
    if current.routed_at >= data["occurred_at"]:
        # Routed again since (this reopening announced twice, or a later decision).
        return None
    # The answer the visitor rejected is history, not current work: replaced, so that
    # the unit's and its supervisors' lists of resolved assignments hold only answers
    # that stand (the row keeps its answer and resolved_at).
    current.status = models.REPLACED
    return _hand_over(
        uow,
        _case_of(current),
        facts_of_assignment(current),
        _reopened_to(session, data, current, default_unit=default_unit),
        now=dt.datetime.now(dt.UTC),
        previous=current,
    )


def _reopened_to(
    session, data: dict[str, Any], current: models.Assignment, *, default_unit: str
) -> rules.Choice:
    """Choose who takes a reopened case: someone active, whatever was retired since.

    The unit supervision names, else the unit that answered, else that unit's
    supervising unit (its county government, or the city's office: where a merged or
    abolished unit's work goes, as a return would), else the rules, as for a new case.
    """
    reason = f"reopened: {data['reason']}"
    directory = SessionDirectory(session)
    candidates = [data["unit"], current.unit]
    candidates.append(rules.supervising_unit(directory, current.unit, default=default_unit))
    for code in candidates:
        unit = directory.get(code) if code else None
        if unit is not None and unit.active:
            return rules.Choice(code, reason)
    # Nothing above it is active either: the rules, then the default unit, take it.
    choice = rules.choose_unit(
        facts_of_assignment(current), directory, default=default_unit, rules=SessionRules(session)
    )
    return replace(choice, reason=f"{reason} ({choice.reason})")


def _latest_meeting_decision(session, case_id: str) -> dt.datetime | None:
    """Return when the latest meeting decision applied to a case was decided, if any."""
    return session.scalar(
        select(func.max(models.AssignmentAction.occurred_at))
        .join(models.Assignment, models.Assignment.id == models.AssignmentAction.assignment_id)
        .where(
            models.Assignment.case_id == case_id,
            models.AssignmentAction.action == MEETING_DECIDED,
        )
    )


def _decision_text(data: dict[str, Any]) -> str:
    what = {"reassign": f"to {data['unit']}", "extend": f"to {events.iso(data['due_at'])}"}
    return f"{data['decision']} {what[data['decision']]}: {data.get('note') or ''}"


def _superseded(session, current: models.Assignment, data: dict[str, Any]) -> bool:
    """Record the decision on the lead it found; return True if a later one was applied first.

    Supervision may record several decisions on a case (one a month) and a redelivery
    can bring an older one after a newer: the newer stands.
    """
    decided_at = data["occurred_at"]
    if decided_at is None:
        # Undated (no occurred_at, no event time): nothing to order it by; applied.
        return False
    latest = _latest_meeting_decision(session, current.case_id)
    if latest is not None and decided_at < latest:
        _log(
            session,
            current,
            MEETING_SUPERSEDED,
            MEETING,
            decided_at,
            f"{_decision_text(data)} (superseded by the decision of {events.iso(latest)})",
        )
        log.info(
            "meeting decision superseded",
            extra={
                "case_id": current.case_id,
                "decision": data["decision"],
                "decided_at": events.iso(decided_at),
                "latest": events.iso(latest),
            },
        )
        return True
    _log(session, current, MEETING_DECIDED, MEETING, decided_at, _decision_text(data))
    return False


def meeting_decision(uow: UnitOfWork, data: dict[str, Any]) -> models.Assignment | None:
    """Apply a joint meeting's (联席会议) decision: reassign the case or extend its deadline.

    A decision older than one already applied to the case is recorded as superseded
    and changes nothing; a note changes nothing at routing, so it supersedes nothing.
    """
    session = uow.session
    current = locked_lead(session, data["case_id"])
    if current is None:
        log.warning("meeting decision on a case never routed", extra={"case_id": data["case_id"]})
        return None
    if data["decision"] not in ("reassign", "extend"):
        return None
    # Before the unit is checked: an old decision may name a unit retired since.
    if _superseded(session, current, data):
        return None
    now = dt.datetime.now(dt.UTC)
    if data["decision"] == "extend":
        if data["due_at"] > current.due_at:
            days_note = data.get("note") or "joint meeting decision"
            current.due_at = data["due_at"]
            current.extensions += 1
            _log(session, current, "extension_granted", MEETING, now, days_note)
            _acted(
                uow,
                current,
                "extension_granted",
                MEETING,
                now,
                {"due_at": events.iso(current.due_at), "granted_by": MEETING, "reason": days_note},
                partner_copy=True,
            )
        return current
    # A reassignment: the only decision left.
    target = session.get(models.Unit, data["unit"])
    if target is None or not target.active:
        raise Invalid(f"unit {data['unit']!r} is unknown or inactive", "unit")
    facts = facts_of_assignment(current)
    choice = rules.apply_confidentiality(
        rules.Choice(data["unit"], f"joint meeting: {data.get('note') or 'reassigned'}"),
        facts,
        SessionDirectory(session),
    )
    # Compared where the case would go, after confidentiality: a reassignment to the
    # accused unit lands on its superior, and the same decision announced again must
    # find the case there already.
    if current.unit == choice.unit:
        return None
    # Replaced whatever its state: a resolved answer the meeting overrules included.
    current.status = models.REPLACED
    return _hand_over(uow, _case_of(current), facts, choice, now=now, previous=current)
