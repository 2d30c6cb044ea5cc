"""``/v1/cases``: read a case by its number or its id."""

from __future__ import annotations

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from sqlalchemy import or_, select

from intake import models
from intake.access import ensure_can_read
from intake.schemas import CaseOut
from intake.views import case_view
from servicekit.auth import current_principal, require

blp = Blueprint(
    "cases",
    __name__,
    url_prefix="/v1/cases",
    description="Cases: one per issue raised, with its readable number.",
)


@blp.route("/<ref>")
class CaseByRef(MethodView):
    @require()
    @blp.response(200, CaseOut)
    @blp.alt_response(404, description="No such case for your unit.")
    def get(self, ref: str):
        """Read a case by case number (e.g. ``city-org-20261215-0001``) or case id."""
        if len(ref) > 90:
            abort(404, message="no such case")
        with current_app.extensions["runtime"].sessions() as session:
            case = session.scalars(
                select(models.Case).where(
                    or_(models.Case.id == ref, models.Case.case_number == ref)
                )
            ).first()
            if case is None:
                abort(404, message="no such case")
            ensure_can_read(current_principal(), case.unit)
            return case_view(case)
