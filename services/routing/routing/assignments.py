"""``/v1/assignments``: the cases handed to units (转办件)."""

from __future__ import annotations

import uuid

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import RAISE
from sqlalchemy import select

from routing import models
from routing.access import ensure_can_read, visible_assignments
from routing.pages import paginate
from routing.schemas import AssignmentOut, AssignmentPage, AssignmentQuery
from servicekit.auth import current_principal, require

blp = Blueprint(
    "assignments",
    __name__,
    url_prefix="/v1/assignments",
    description="Assignments (转办件): a case handed to the unit responsible for it.",
)

READERS = ("partner", "supervisor", "admin")


@blp.route("")
class Assignments(MethodView):
    @require(*READERS)
    @blp.arguments(AssignmentQuery, location="query", unknown=RAISE)
    @blp.response(200, AssignmentPage)
    @blp.alt_response(401, description="No valid bearer token.")
    @blp.alt_response(403, description="The token lacks a partner, supervisor or admin role.")
    def get(self, args):
        """List assignments, newest first: a partner sees its own unit's."""
        query = visible_assignments(current_principal(), select(models.Assignment))
        if "status" in args:
            query = query.where(models.Assignment.status == args["status"])
        if "case_number" in args:
            query = query.where(models.Assignment.case_number == args["case_number"])
        query = query.order_by(models.Assignment.routed_at.desc(), models.Assignment.id)
        with current_app.extensions["runtime"].sessions() as session:
            return paginate(session, query, page=args["page"], page_size=args["page_size"])


@blp.route("/<assignment_id>")
class AssignmentById(MethodView):
    @require(*READERS)
    @blp.response(200, AssignmentOut)
    @blp.alt_response(404, description="No such assignment for your unit.")
    def get(self, assignment_id: str):
        """Read one assignment."""
        try:
            uuid.UUID(assignment_id)
        except ValueError:
            abort(404, message="no such assignment")
        with current_app.extensions["runtime"].sessions() as session:
            assignment = session.get(models.Assignment, assignment_id)
            if assignment is None:
                abort(404, message="no such assignment")
            ensure_can_read(current_principal(), assignment)
            return assignment
