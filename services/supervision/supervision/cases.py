"""``/v1/cases``: a supervised case by its number or id, and its timeline."""

from __future__ import annotations

from flask import current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import RAISE
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from servicekit import text
from servicekit.auth import current_principal, require
from supervision import models, usecases
from supervision.access import (
    ensure_can_read,
    ensure_not_its_own_assessment,
    ensure_supervises,
)
from supervision.schemas import (
    CaseOut,
    FeedbackIn,
    FeedbackOut,
    IdempotencyHeader,
    NoQuery,
    SupervisorIn,
    SupervisorOut,
    TimelineOut,
)

# A case gathers a few dozen events in its life; this bounds the answer all the same.
MAX_TIMELINE_ENTRIES = 1000

blp = Blueprint(
    "cases",
    __name__,
    url_prefix="/v1/cases",
    description="Supervised cases (督办): status, responsible unit, due date and timeline.",
)


def find_case(session: Session, ref: str) -> models.SupervisedCase:
    """Return the case named by number or id, else abort with 404."""
    # A NUL names no case (and PostgreSQL refuses it in a text parameter).
    if len(ref) > 90 or text.has_unstorable(ref):
        abort(404, message="no such case")
    case = session.scalars(
        select(models.SupervisedCase).where(
            or_(models.SupervisedCase.case_id == ref, models.SupervisedCase.case_number == ref)
        )
    ).first()
    if case is None:
        abort(404, message="no such case")
    return case


def _readable_case(session: Session, ref: str) -> models.SupervisedCase:
    """Return the case named by number or id if the caller may read it, else abort with 404."""
    case = find_case(session, ref)
    ensure_can_read(session, current_principal(), case)
    return case


def _conflict_on_key() -> None:
    abort(
        422,
        message="this Idempotency-Key was already used for a different request",
        errors={"headers": {"Idempotency-Key": ["already used for a different request"]}},
    )


@blp.route("/<ref>")
class CaseByRef(MethodView):
    @require()
    @blp.arguments(NoQuery(), location="query", unknown=RAISE)
    @blp.response(200, CaseOut)
    @blp.alt_response(401, description="No valid bearer token.")
    @blp.alt_response(404, description="No such case, or not one of your unit's.")
    def get(self, _query, ref: str):
        """Read a supervised case by case number (``city-org-20261215-0001``) or case id."""
        with current_app.extensions["runtime"].reading() as session:
            return _readable_case(session, ref)


@blp.route("/<ref>/timeline")
class CaseTimeline(MethodView):
    @require()
    @blp.arguments(NoQuery(), location="query", unknown=RAISE)
    @blp.response(200, TimelineOut)
    @blp.alt_response(401, description="No valid bearer token.")
    @blp.alt_response(404, description="No such case, or not one of your unit's.")
    def get(self, _query, ref: str):
        """Read a case's timeline: every event applied to it, in the order they happened."""
        with current_app.extensions["runtime"].reading() as session:
            case = _readable_case(session, ref)
            entry = models.TimelineEntry
            entries = session.scalars(
                select(entry)
                .where(entry.case_id == case.case_id)
                .order_by(entry.occurred_at, entry.event_id)
                .limit(MAX_TIMELINE_ENTRIES + 1)
            ).all()
            return {
                "case_id": case.case_id,
                "case_number": case.case_number,
                "entries": entries[:MAX_TIMELINE_ENTRIES],
                "truncated": len(entries) > MAX_TIMELINE_ENTRIES,
            }


@blp.route("/<ref>/feedback")
class CaseFeedback(MethodView):
    @require("reception", "supervisor", "admin")
    @blp.arguments(NoQuery(), location="query", unknown=RAISE)
    @blp.arguments(IdempotencyHeader(), location="headers")
    @blp.arguments(FeedbackIn())
    @blp.response(200, FeedbackOut)
    @blp.alt_response(401, description="No valid bearer token.")
    @blp.alt_response(
        403,
        description="Partners, and the unit that answered (responsible for the case, or that "
        "answered it on the spot), do not record it.",
    )
    @blp.alt_response(404, description="No such case, or not one you may follow.")
    @blp.alt_response(
        409,
        description="The case is neither resolved nor answered on the spot, waiting for feedback.",
    )
    def post(self, _query, headers, data, ref: str):
        """Record the visitor's feedback (回访) on a resolved case, or one answered on the spot.

        Satisfied closes the case (``case.closed``); unsatisfied reopens it
        (``case.reopened``: routing sends it back to the unit, and its clock restarts when
        it is routed again; a case answered on the spot, which routing never had, stays
        reopened on the board). Send an ``Idempotency-Key`` so a retry records nothing twice.
        """
        principal = current_principal()
        runtime = current_app.extensions["runtime"]
        with runtime.sessions() as session:
            case = find_case(session, ref)
            if principal.has("reception") and principal.unit == case.receiving_unit:
                # The desk the visitor came to records the visitor's word, on its own
                # unit's answer too: leaders receive visitors about their unit's work.
                pass
            elif principal.has("supervisor", "admin"):
                ensure_supervises(session, principal, case)
                ensure_not_its_own_assessment(principal, case)
            else:
                abort(404, message="no such case")
            case_id = case.case_id
        try:
            uow = runtime.unit_of_work()
            return usecases.idempotent(
                uow,
                unit=principal.unit,
                key=headers.get("idempotency_key"),
                fingerprint=usecases.request_fingerprint(
                    {"case": case_id, "feedback": request.get_json(silent=True)}
                ),
                action=lambda: usecases.record_feedback(uow, case_id, **_feedback(data)),
            )
        except usecases.NotResolved as exc:
            abort(
                409,
                message=f"the case is {exc.status}: feedback is taken on a resolved case",
                errors={"json": {"satisfied": [f"the case is {exc.status}, not resolved"]}},
            )
        except usecases.IdempotencyConflict:
            _conflict_on_key()


def _feedback(data: dict) -> dict:
    return {"satisfied": data["satisfied"], "comment": data.get("comment")}


@blp.route("/<ref>/supervisor")
class CaseSupervisor(MethodView):
    @require("supervisor", "admin")
    @blp.arguments(NoQuery(), location="query", unknown=RAISE)
    @blp.arguments(SupervisorIn())
    @blp.response(200, SupervisorOut)
    @blp.alt_response(401, description="No valid bearer token.")
    @blp.alt_response(403, description="Only supervisors name a major case's supervisor.")
    @blp.alt_response(404, description="No such case in your jurisdiction.")
    def put(self, _query, data, ref: str):
        """Name the supervisor of a major case (重案督办), at any time: ``case.escalated`` major.

        Naming the same supervisor again changes nothing and publishes nothing.
        """
        principal = current_principal()
        runtime = current_app.extensions["runtime"]
        with runtime.sessions() as session:
            case = find_case(session, ref)
            ensure_supervises(session, principal, case)
            case_id = case.case_id
        with runtime.unit_of_work() as uow:
            body = usecases.name_supervisor(uow, case_id, **data)
            uow.commit()
        return body
