"""``/v1/meetings``: the joint meeting's (联席会议) agenda of a month, and its decisions."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from flask import current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import RAISE, ValidationError
from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import aliased

from servicekit.auth import current_principal, require
from servicekit.localtime import local_zone
from supervision import access, models, usecases
from supervision.cases import find_case
from supervision.schemas import (
    MONTH,
    AgendaOut,
    DecisionIn,
    DecisionOut,
    IdempotencyHeader,
    MonthPath,
    NoQuery,
)

# A month's agenda is read in one answer; more cases than this is not a meeting.
MAX_AGENDA_CASES = 1000

blp = Blueprint(
    "meetings",
    __name__,
    url_prefix="/v1/meetings",
    description="The joint meeting (联席会议): escalated and major cases, and its decisions.",
)


def _month(month: str) -> tuple[dt.datetime, dt.datetime]:
    """Return the month's first instant and the next month's, on the programme's calendar."""
    try:
        MonthPath().load({"month": month})
    except ValidationError as exc:
        abort(422, message="not a month", errors={"path": exc.messages})
    year, number = int(month[:4]), int(month[5:])
    zone = local_zone()
    start = dt.datetime(year, number, 1, tzinfo=zone)
    end = dt.datetime(year + number // 12, number % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def unresolved_at(end: dt.datetime):
    """Return the SQL condition that a case stood unresolved at the instant ``end``.

    The case's row says so unless the visitor reopened it since ``end``: its resolution then
    was rejected later, and the row now holds a later cycle (routed again, maybe resolved
    again). Such a case stood resolved at ``end`` if its timeline has a resolution before
    ``end`` with no reopening between the two. A co-operating unit's resolution (协办) is
    not the case's: one routing marked ``role: co``, or one of an assignment whose
    ``case.routed`` says co.
    """
    case, entry = models.SupervisedCase, models.TimelineEntry
    resolution, reopening, co = aliased(entry), aliased(entry), aliased(entry)
    resolved_then = exists().where(
        resolution.case_id == case.case_id,
        resolution.event_type == "assignment.resolved",
        resolution.occurred_at < end,
        func.coalesce(resolution.summary["role"].as_string(), "") != "co",
        ~exists().where(
            co.case_id == case.case_id,
            co.event_type == "case.routed",
            co.summary["role"].as_string() == "co",
            co.summary["assignment_id"].as_string()
            == resolution.summary["assignment_id"].as_string(),
        ),
        ~exists().where(
            reopening.case_id == case.case_id,
            reopening.event_type == "case.reopened",
            reopening.occurred_at > resolution.occurred_at,
            reopening.occurred_at < end,
        ),
    )
    return and_(
        or_(case.status.in_(models.UNRESOLVED), case.resolved_at >= end),
        or_(case.reopened_at.is_(None), case.reopened_at < end, ~resolved_then),
    )


# The path's month as the document shows it: the pattern _month() enforces.
MONTH_PARAMETER = {
    "in": "path",
    "name": "month",
    "required": True,
    "schema": {"type": "string", "pattern": MONTH.regex.pattern},
}


@blp.route("/<month>/agenda", parameters=[MONTH_PARAMETER])
class Agenda(MethodView):
    @require("supervisor", "admin")
    @blp.arguments(NoQuery(), location="query", unknown=RAISE)
    @blp.response(200, AgendaOut)
    @blp.alt_response(401, description="No valid bearer token.")
    @blp.alt_response(403, description="Only supervisors and admins read the agenda.")
    def get(self, _query, month: str):
        """List the month's cases to discuss, grouped by responsible unit.

        On the agenda: cases unresolved at the month's end that reached listed
        supervision (level 1 or 2) or got a named supervisor (major) before it, at the
        level they had reached by then: a past month reads as it stood when it ended,
        whatever became of its cases since. Each carries the decision recorded on it
        this month, if any; status, due date and ladder step are the case's own now.
        """
        _start, end = _month(month)
        case, firing, step = models.SupervisedCase, models.LadderFiring, models.LadderStep
        with current_app.extensions["runtime"].reading() as session:
            escalation = (
                select(func.max(step.level))
                .join(firing, firing.step == step.step)
                .where(
                    firing.case_id == case.case_id,
                    step.event == "escalated",
                    firing.fire_at < end,
                )
                .scalar_subquery()
            )
            escalated = exists().where(
                firing.case_id == case.case_id,
                firing.step == step.step,
                step.event == "escalated",
                firing.fire_at < end,
            )
            conditions = [unresolved_at(end), or_(case.major_since < end, escalated)]
            principal = current_principal()
            units = access.jurisdiction(session, principal)
            withheld = access.accused_above(session, principal)
            conditions.append(
                access.in_units(session, units, withheld=withheld, own=principal.unit)
            )
            rows = session.execute(
                select(case, escalation.label("level"))
                .where(*conditions)
                .order_by(case.responsible_unit, case.received_at, case.case_number)
                .limit(MAX_AGENDA_CASES + 1)
            ).all()
            rows, truncated = rows[:MAX_AGENDA_CASES], len(rows) > MAX_AGENDA_CASES
            decisions = {
                d.case_id: d
                for d in session.scalars(
                    select(models.MeetingDecision).where(
                        models.MeetingDecision.month == month,
                        models.MeetingDecision.case_id.in_([r[0].case_id for r in rows]),
                    )
                )
            }
            names = dict(
                session.execute(
                    select(models.Unit.code, models.Unit.name).where(
                        models.Unit.code.in_({r[0].responsible_unit for r in rows})
                    )
                ).all()
            )
            grouped: dict[str, list] = defaultdict(list)
            for row, level in rows:
                decision = decisions.get(row.case_id)
                # Named after the month ended: that month's meeting knew it by its level.
                major = row.major_since is not None and row.major_since < end
                grouped[row.responsible_unit or row.receiving_unit].append(
                    {
                        "case_id": row.case_id,
                        "case_number": row.case_number,
                        "category": row.category,
                        "status": row.status,
                        "received_at": row.received_at,
                        "due_at": row.due_at,
                        "ladder_step": row.ladder_step,
                        "level": "major" if major else (str(level) if level else None),
                        "major_supervisor": row.major_supervisor if major else None,
                        "decision": (
                            {
                                "decision": decision.decision,
                                "unit": decision.unit,
                                "due_at": decision.due_at.isoformat() if decision.due_at else None,
                                "note": decision.note,
                            }
                            if decision
                            else None
                        ),
                    }
                )
            return {
                "month": month,
                "units": [
                    {"unit": unit, "name": names.get(unit), "cases": cases}
                    for unit, cases in sorted(grouped.items())
                ],
                "truncated": truncated,
            }


@blp.route("/<month>/decisions", parameters=[MONTH_PARAMETER])
class Decisions(MethodView):
    @require("supervisor", "admin")
    @blp.arguments(NoQuery(), location="query", unknown=RAISE)
    @blp.arguments(IdempotencyHeader(), location="headers")
    @blp.arguments(DecisionIn())
    @blp.response(201, DecisionOut)
    @blp.alt_response(401, description="No valid bearer token.")
    @blp.alt_response(
        403, description="Only supervisors and admins, not of the unit responsible for the case."
    )
    @blp.alt_response(404, description="No such case in your jurisdiction.")
    @blp.alt_response(409, description="A decision on this case is already recorded this month.")
    def post(self, _query, headers, data, month: str):
        """Record the meeting's decision on a case: ``meeting.decision_recorded`` for routing.

        ``reassign`` names the new unit (one of the unit directory, active: 422 otherwise),
        ``extend`` the new due date, ``note`` neither.
        One decision per case and month; send an ``Idempotency-Key`` so a retry records
        nothing twice.
        """
        _month(month)
        principal = current_principal()
        runtime = current_app.extensions["runtime"]
        with runtime.sessions() as session:
            case = find_case(session, data["case"])
            access.ensure_supervises(session, principal, case)
            access.ensure_not_its_own_assessment(principal, case)
            case_id = case.case_id
        uow = runtime.unit_of_work()
        try:
            return usecases.idempotent(
                uow,
                unit=principal.unit,
                key=headers.get("idempotency_key"),
                fingerprint=usecases.request_fingerprint(
                    {"month": month, "decision": request.get_json(silent=True)}
                ),
                action=lambda: usecases.record_decision(
                    uow, case_id, month=month, data=data, by=principal.sub
                ),
            )
        except usecases.UnitRefused as exc:
            abort(422, message=exc.message, errors={"json": {"unit": [exc.message]}})
        except usecases.AlreadyDecided:
            abort(
                409,
                message="the meeting already decided on this case this month",
                errors={"json": {"case": ["already decided this month"]}},
            )
        except usecases.IdempotencyConflict:
            abort(
                422,
                message="this Idempotency-Key was already used for a different request",
                errors={"headers": {"Idempotency-Key": ["already used for a different request"]}},
            )
