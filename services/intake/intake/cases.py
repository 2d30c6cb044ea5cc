"""``/v1/cases``: list the cases you may see, read one by its number or its id."""

from __future__ import annotations

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from sqlalchemy import or_, select

from intake import models
from intake.access import ensure_can_read, visible_units
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
            units = visible_units(session, current_principal())
            if units is not None:
                conditions.append(models.Case.unit.in_(sorted(units)))
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
        """Read a case by case number (e.g. ``city-org-20261215-0001``) or case id."""
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
            ensure_can_read(session, current_principal(), case.unit)
            return case_view(case)
