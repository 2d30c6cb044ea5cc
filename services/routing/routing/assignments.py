"""``/v1/assignments``: the cases handed to units (转办件)."""

from __future__ import annotations

import uuid

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import RAISE
from sqlalchemy import select

from routing import models, rules, usecases
from routing.access import ensure_can_read, visible_assignments
from routing.pages import paginate
from routing.schemas import (
    ArbitrationIn,
    AssignmentOut,
    AssignmentPage,
    AssignmentQuery,
    CoHandlerIn,
    ExtensionDecisionIn,
    ExtensionIn,
    ExtensionOut,
    ProgressIn,
    ResolveIn,
    ReturnIn,
    TransferIn,
)
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
    @blp.arguments(AssignmentQuery(), location="query", unknown=RAISE)
    @blp.response(200, AssignmentPage)
    @blp.alt_response(401, description="No valid bearer token.")
    @blp.alt_response(403, description="The token lacks a partner, supervisor or admin role.")
    def get(self, args):
        """List assignments, newest first: a partner sees its own unit's."""
        query = select(models.Assignment)
        if "status" in args:
            query = query.where(models.Assignment.status == args["status"])
        if "case_number" in args:
            query = query.where(models.Assignment.case_number == args["case_number"])
        query = query.order_by(models.Assignment.routed_at.desc(), models.Assignment.id)
        with current_app.extensions["runtime"].reading() as session:
            query = visible_assignments(session, current_principal(), query)
            return paginate(session, query, page=args["page"], page_size=args["page_size"])


@blp.route("/<assignment_id>")
class AssignmentById(MethodView):
    @require(*READERS)
    @blp.response(200, AssignmentOut)
    @blp.alt_response(404, description="No such assignment for your unit.")
    def get(self, assignment_id: str):
        """Read one assignment."""
        _check_id(assignment_id)
        with current_app.extensions["runtime"].reading() as session:
            assignment = session.get(models.Assignment, assignment_id)
            if assignment is None:
                abort(404, message="no such assignment")
            ensure_can_read(current_principal(), assignment)
            return assignment


def _check_id(assignment_id: str) -> None:
    try:
        uuid.UUID(assignment_id)
    except ValueError:
        abort(404, message="no such assignment")


def fail(exc: usecases.ActionError):
    """Answer an action the use case refused: 409, 404, 403, or 422 naming the field."""
    if exc.field:
        abort(exc.status, message=exc.message, errors={"json": {exc.field: [exc.message]}})
    abort(exc.status, message=exc.message)


def act(assignment_id: str, action, *args, **kwargs):
    """Run a partner or supervisor action in one transaction; return the assignment acted on."""
    _check_id(assignment_id)
    runtime = current_app.extensions["runtime"]
    try:
        with runtime.unit_of_work() as uow:
            result = action(uow, assignment_id, current_principal(), *args, **kwargs)
            acted = uow.session.get(models.Assignment, assignment_id)
            uow.session.flush()
            # Detached with its state loaded: the response is dumped after the commit.
            uow.session.expunge(acted)
            uow.commit()
    except usecases.ActionError as exc:
        fail(exc)
    if isinstance(result, tuple):
        return {"granted": result[1], "assignment": acted}
    return acted


ACTION_RESPONSES = (
    (403, "Not a partner of the assignment's unit."),
    (404, "No such assignment for your unit."),
    (409, "The assignment's state forbids this action (e.g. resolve before accept)."),
)


def _documented(view):
    for status, description in ACTION_RESPONSES:
        view = blp.alt_response(status, description=description)(view)
    return view


@blp.route("/<assignment_id>/accept")
class Accept(MethodView):
    @require("partner")
    @blp.response(200, AssignmentOut)
    @_documented
    def post(self, assignment_id: str):
        """Accept (签收) an assignment of your unit."""
        return act(assignment_id, usecases.accept)


@blp.route("/<assignment_id>/return")
class Return(MethodView):
    @require("partner")
    @blp.arguments(ReturnIn())
    @blp.response(200, AssignmentOut)
    @_documented
    def post(self, data, assignment_id: str):
        """Return (退回) an assignment that is not your unit's: its supervising unit re-dispatches.

        Past ``ROUTING_MAX_MOVES`` returns and transfers the case goes to arbitration.
        """
        return act(
            assignment_id, usecases.return_, data["reason"], default_unit=rules.default_unit()
        )


@blp.route("/<assignment_id>/transfer")
class Transfer(MethodView):
    @require("partner")
    @blp.arguments(TransferIn())
    @blp.response(200, AssignmentOut)
    @blp.alt_response(422, description="to_unit is unknown, inactive, or your own.")
    @_documented
    def post(self, data, assignment_id: str):
        """Transfer (转办) an assignment onward; never to the unit the case accuses."""
        return act(
            assignment_id,
            usecases.transfer,
            data["to_unit"],
            data["reason"],
            default_unit=rules.default_unit(),
        )


@blp.route("/<assignment_id>/progress")
class Progress(MethodView):
    @require("partner")
    @blp.arguments(ProgressIn())
    @blp.response(200, AssignmentOut)
    @_documented
    def post(self, data, assignment_id: str):
        """Report progress on an accepted assignment."""
        return act(assignment_id, usecases.progress, data["note"])


@blp.route("/<assignment_id>/resolve")
class Resolve(MethodView):
    @require("partner")
    @blp.arguments(ResolveIn())
    @blp.response(200, AssignmentOut)
    @_documented
    def post(self, data, assignment_id: str):
        """Resolve (办结) an accepted assignment with the answer given to the visitor."""
        return act(assignment_id, usecases.resolve, data["answer"])


@blp.route("/<assignment_id>/extension")
class Extension(MethodView):
    @require("partner")
    @blp.arguments(ExtensionIn())
    @blp.response(200, ExtensionOut)
    @_documented
    def post(self, data, assignment_id: str):
        """Ask for more time: the first extension up to the policy's days is granted at once.

        Any other waits for the supervising unit (``granted`` false).
        """
        return act(
            assignment_id,
            usecases.request_extension,
            data["days"],
            data["reason"],
            default_unit=rules.default_unit(),
        )


@blp.route("/<assignment_id>/extension/decision")
class ExtensionDecision(MethodView):
    @require("supervisor", "admin")
    @blp.arguments(ExtensionDecisionIn())
    @blp.response(200, AssignmentOut)
    @_documented
    def post(self, data, assignment_id: str):
        """Grant or refuse a pending extension, as the supervising unit (or an admin)."""
        return act(
            assignment_id,
            usecases.decide_extension,
            data["grant"],
            data["reason"],
            data.get("days"),
        )


@blp.route("/<assignment_id>/arbitration")
class Arbitration(MethodView):
    @require("supervisor", "admin")
    @blp.arguments(ArbitrationIn())
    @blp.response(200, AssignmentOut)
    @blp.alt_response(422, description="unit is unknown or inactive.")
    @_documented
    def post(self, data, assignment_id: str):
        """Decide an arbitration: name the unit that must handle the case.

        Only the supervising unit named in ``assignment.arbitration_requested`` (or an
        admin) decides; the answer is the assignment that went to arbitration.
        """
        return act(assignment_id, usecases.arbitrate, data["unit"], data["reason"])


@blp.route("/<assignment_id>/co-handlers")
class CoHandlers(MethodView):
    @require("partner")
    @blp.arguments(CoHandlerIn())
    @blp.response(201, AssignmentOut)
    @blp.alt_response(422, description="unit is unknown, inactive, or the lead unit itself.")
    @_documented
    def post(self, data, assignment_id: str):
        """Ask another unit to co-handle (协办) your unit's case; answers the new assignment.

        The co-handling unit gets ``case.routed`` with ``role: co`` and the lead's due date;
        it may accept, report progress, resolve its part, or return (decline) it.
        """
        _check_id(assignment_id)
        runtime = current_app.extensions["runtime"]
        try:
            with runtime.unit_of_work() as uow:
                co = usecases.add_co_handler(
                    uow, assignment_id, current_principal(), data["unit"], data["reason"]
                )
                uow.session.flush()
                uow.session.expunge(co)
                uow.commit()
        except usecases.ActionError as exc:
            fail(exc)
        return co
