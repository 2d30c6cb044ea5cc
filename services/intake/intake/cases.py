"""``/v1/cases``: list the cases you may see, read one by its number or its id."""

from __future__ import annotations

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from sqlalchemy import or_, select

from intake import models
from intake.access import case_conditions, ensure_can_read_case, sight
from intake.schemas import CaseOut, CasePageOut, CaseQuery, ErrorOut, has_control
from intake.views import case_view
from servicekit.auth import current_principal, require
from servicekit.pages import count_up_to

blp = Blueprint(
    "cases",
    __name__,
    url_prefix="/v1/cases",
    description="Cases: one per issue raised, with its readable number.",
)


@blp.route("")
class Cases(MethodView):
    @require()
    @blp.arguments(CaseQuery(), location="query", unknown="raise")
    @blp.response(200, CasePageOut)
    @blp.alt_response(401, schema=ErrorOut, description="No valid bearer token.")
    def get(self, query):
        """List cases, newest first: a unit its own, a supervisor its jurisdiction.

        A complaint about the caller's unit or a unit above it is left out for a
        supervisor, unless its unit received the complaint or answers for it.

        Filter by status, category, channel, receiving unit, repeat and period
        (``from``/``to`` on the time received); pages hold at most 100 cases.
        """
        conditions = []
        for name in ("status", "category", "channel", "unit"):
            if query.get(name):
                conditions.append(getattr(models.Case, name) == query[name])
        if "repeat" in query:
            is_repeat = models.Case.repeat_of.is_not(None)
            conditions.append(is_repeat if query["repeat"] else models.Case.repeat_of.is_(None))
        if query.get("from_"):
            conditions.append(models.Case.received_at >= query["from_"])
        if query.get("to"):
            conditions.append(models.Case.received_at < query["to"])
        page, size = query["page"], query["page_size"]
        with current_app.extensions["runtime"].reading() as session:
            conditions.extend(case_conditions(sight(session, current_principal())))
            total, exact = count_up_to(session, select(models.Case.id).where(*conditions))
            rows = session.scalars(
                select(models.Case)
                .where(*conditions)
                .order_by(models.Case.received_at.desc(), models.Case.case_number.desc())
                .offset((page - 1) * size)
                .limit(size)
            ).all()
            return {
                "items": [case_view(c) for c in rows],
                "page": page,
                "page_size": size,
                "total": total,
                "total_exact": exact,
            }


@blp.route("/<ref>")
class CaseByRef(MethodView):
    @require()
    @blp.response(200, CaseOut)
    @blp.alt_response(401, schema=ErrorOut, description="No valid bearer token.")
    @blp.alt_response(404, schema=ErrorOut, description="No such case for your unit.")
    def get(self, ref: str):
        """Read a case by case number (e.g. ``city-org-20261215-0001``) or case id.

        A complaint about the caller's unit or a unit above it is 404, as an unknown
        case, unless its unit received the complaint or answers for it.
        """
        if len(ref) > 90 or has_control(ref):
            abort(404, message="no such case")
        with current_app.extensions["runtime"].reading() as session:
            case = session.scalars(
                select(models.Case).where(
                    or_(models.Case.id == ref, models.Case.case_number == ref)
                )
            ).first()
            if case is None:
                abort(404, message="no such case")
            ensure_can_read_case(session, current_principal(), case)
            return case_view(case)
