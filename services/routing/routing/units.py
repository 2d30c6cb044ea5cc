"""``/v1/units``: the unit directory (联动单位), readable by any authenticated caller."""

from __future__ import annotations

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import RAISE
from sqlalchemy import select

from routing import models
from routing.pages import paginate
from routing.schemas import UnitOut, UnitPage, UnitQuery
from servicekit.auth import require

blp = Blueprint(
    "units",
    __name__,
    url_prefix="/v1/units",
    description="The unit directory: city → county/district → township.",
)

FILTERS = ("level", "parent", "area", "active")


@blp.route("")
class Units(MethodView):
    @require()
    @blp.arguments(UnitQuery, location="query", unknown=RAISE)
    @blp.response(200, UnitPage)
    @blp.alt_response(401, description="No valid bearer token.")
    def get(self, args):
        """List units by code, optionally of one level, parent or area, or by activity."""
        query = select(models.Unit).order_by(models.Unit.code)
        for name in FILTERS:
            if name in args:
                query = query.where(getattr(models.Unit, name) == args[name])
        with current_app.extensions["runtime"].sessions() as session:
            return paginate(session, query, page=args["page"], page_size=args["page_size"])


@blp.route("/<code>")
class UnitByCode(MethodView):
    @require()
    @blp.response(200, UnitOut)
    @blp.alt_response(404, description="No such unit.")
    def get(self, code: str):
        """Read one unit by its code, e.g. ``lw-buwen``."""
        if len(code) > 64:
            abort(404, message="no such unit")
        with current_app.extensions["runtime"].sessions() as session:
            unit = session.get(models.Unit, code)
            if unit is None:
                abort(404, message="no such unit")
            return unit
