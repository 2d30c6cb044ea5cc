"""``/v1/meetings``: the joint meeting's (联席会议) agenda of a month, and its decisions."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from flask import current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import RAISE, ValidationError
from sqlalchemy import exists, func, or_, select

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

        On the agenda: cases still unresolved that reached listed supervision (level 1 or
        2) or got a named supervisor (major) before the month ends. Each carries the
        decision recorded on it this month, if any.
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
            conditions = [
                case.status.in_(models.UNRESOLVED),
                or_(case.major_since < end, escalated),
            ]
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
                grouped[row.responsible_unit or row.receiving_unit].append(
                    {
                        "case_id": row.case_id,
                        "case_number": row.case_number,
                        "category": row.category,
                        "status": row.status,
                        "received_at": row.received_at,
                        "due_at": row.due_at,
                        "ladder_step": row.ladder_step,
                        "level": "major" if row.major_since else (str(level) if level else None),
                        "major_supervisor": row.major_supervisor,
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

        ``reassign`` names the new unit, ``extend`` the new due date, ``note`` neither.
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
