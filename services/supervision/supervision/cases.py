"""``/v1/cases``: a supervised case by its number or id, and its timeline."""

from __future__ import annotations

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import RAISE
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from servicekit.auth import current_principal, require
from supervision import models
from supervision.access import ensure_can_read
from supervision.schemas import CaseOut, NoQuery, TimelineOut

# A case gathers a few dozen events in its life; this bounds the answer all the same.
MAX_TIMELINE_ENTRIES = 1000

blp = Blueprint(
    "cases",
    __name__,
    url_prefix="/v1/cases",
    description="Supervised cases (督办): status, responsible unit, due date and timeline.",
)


def _readable_case(session: Session, ref: str) -> models.SupervisedCase:
    """Return the case named by number or id if the caller may read it, else abort with 404."""
    if len(ref) > 90:
        abort(404, message="no such case")
    case = session.scalars(
        select(models.SupervisedCase).where(
            or_(models.SupervisedCase.case_id == ref, models.SupervisedCase.case_number == ref)
        )
    ).first()
    if case is None:
        abort(404, message="no such case")
    ensure_can_read(current_principal(), case)
    return case


@blp.route("/<ref>")
class CaseByRef(MethodView):
    @require()
    @blp.arguments(NoQuery, location="query", unknown=RAISE)
    @blp.response(200, CaseOut)
    @blp.alt_response(401, description="No valid bearer token.")
    @blp.alt_response(404, description="No such case, or not one of your unit's.")
    def get(self, _query, ref: str):
        """Read a supervised case by case number (``city-org-20261215-0001``) or case id."""
        with current_app.extensions["runtime"].sessions() as session:
            return _readable_case(session, ref)


@blp.route("/<ref>/timeline")
class CaseTimeline(MethodView):
    @require()
    @blp.arguments(NoQuery, location="query", unknown=RAISE)
    @blp.response(200, TimelineOut)
    @blp.alt_response(401, description="No valid bearer token.")
    @blp.alt_response(404, description="No such case, or not one of your unit's.")
    def get(self, _query, ref: str):
        """Read a case's timeline: every event applied to it, in the order they happened."""
        with current_app.extensions["runtime"].sessions() as session:
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
