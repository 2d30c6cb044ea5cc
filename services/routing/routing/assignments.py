"""``/v1/assignments``: the cases handed to units (转办件)."""

from __future__ import annotations

import uuid

from flask import current_app, jsonify, make_response, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import RAISE
from sqlalchemy import select

from routing import idempotency, models, rules, usecases
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
    IdempotencyHeader,
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


def act(headers, assignment_id: str, action, *args, made: bool = False, **kwargs):
    """Run a partner or supervisor action in one transaction; answer what it acted on.

    The answer is the assignment acted on; with ``made``, the one the action made (201);
    for an extension, whether it was granted and the assignment.
    With an ``Idempotency-Key`` the answer is kept with the key: a retry of the same
    request gets it again and nothing is done twice.
    """
    _check_id(assignment_id)
    principal = current_principal()
    status = 201 if made else 200

    def run(uow) -> dict:
        result = action(uow, assignment_id, principal, *args, **kwargs)
        uow.session.flush()
        if isinstance(result, tuple):
            acted = uow.session.get(models.Assignment, assignment_id)
            return ExtensionOut().dump({"granted": result[1], "assignment": acted})
        if made:
            return AssignmentOut().dump(result)
        return AssignmentOut().dump(uow.session.get(models.Assignment, assignment_id))

    try:
        body = idempotency.act_once(
            current_app.extensions["runtime"].unit_of_work(),
            unit=principal.unit,
            key=headers.get("idempotency_key"),
            request={
                "action": request.endpoint,
                "assignment": assignment_id,
                "body": request.get_json(silent=True),
            },
            act=run,
            status_code=status,
        )
    except usecases.ActionError as exc:
        fail(exc)
    except idempotency.IdempotencyConflict:
        abort(
            422,
            message="this Idempotency-Key was already used for a different request",
            errors={"headers": {"Idempotency-Key": ["already used for a different request"]}},
        )
    # Already dumped (and maybe replayed from the first answer): sent as it is.
    return make_response(jsonify(body), status)


ACTION_RESPONSES = (
    (403, "Not a partner of the assignment's unit."),
    (404, "No such assignment for your unit."),
    (409, "The assignment's state forbids this action (e.g. resolve before accept)."),
)
REUSED_KEY = (
    "an Idempotency-Key your unit already sent with another request (another action, "
    "assignment or body)."
)


def _documented(invalid: str = "Bad fields"):
    """Document an action's refusals; ``invalid`` says what else its 422 refuses."""

    def decorate(view):
        for status, description in ACTION_RESPONSES:
            view = blp.alt_response(status, description=description)(view)
        return blp.alt_response(422, description=f"{invalid}; or {REUSED_KEY}")(view)

    return decorate


@blp.route("/<assignment_id>/accept")
class Accept(MethodView):
    @require("partner")
    @blp.arguments(IdempotencyHeader(), location="headers")
    @blp.response(200, AssignmentOut)
    @_documented()
    def post(self, headers, assignment_id: str):
        """Accept (签收) an assignment of your unit.

        Send an ``Idempotency-Key`` header: a retry with the same key returns the first
        answer (200, not the 409 of a second accept) and does nothing again.
        """
        return act(headers, assignment_id, usecases.accept)


@blp.route("/<assignment_id>/return")
class Return(MethodView):
    @require("partner")
    @blp.arguments(IdempotencyHeader(), location="headers")
    @blp.arguments(ReturnIn())
    @blp.response(200, AssignmentOut)
    @_documented()
    def post(self, headers, data, assignment_id: str):
        """Return (退回) an assignment that is not your unit's: its supervising unit re-dispatches.

        Past ``ROUTING_MAX_MOVES`` returns and transfers the case goes to arbitration.
        Send an ``Idempotency-Key`` header: a retry with the same key and body returns
        the first answer and does nothing again.
        """
        return act(
            headers,
            assignment_id,
            usecases.return_,
            data["reason"],
            default_unit=rules.default_unit(),
        )


@blp.route("/<assignment_id>/transfer")
class Transfer(MethodView):
    @require("partner")
    @blp.arguments(IdempotencyHeader(), location="headers")
    @blp.arguments(TransferIn())
    @blp.response(200, AssignmentOut)
    @_documented("Bad fields; to_unit is unknown, inactive, or your own")
    def post(self, headers, data, assignment_id: str):
        """Transfer (转办) an assignment onward; never to the unit the case accuses.

        Send an ``Idempotency-Key`` header: a retry with the same key and body returns
        the first answer and does nothing again.
        """
        return act(
            headers,
            assignment_id,
            usecases.transfer,
            data["to_unit"],
            data["reason"],
            default_unit=rules.default_unit(),
        )


@blp.route("/<assignment_id>/progress")
class Progress(MethodView):
    @require("partner")
    @blp.arguments(IdempotencyHeader(), location="headers")
    @blp.arguments(ProgressIn())
    @blp.response(200, AssignmentOut)
    @_documented()
    def post(self, headers, data, assignment_id: str):
        """Report progress on an accepted assignment.

        Send an ``Idempotency-Key`` header: a retry with the same key and body returns
        the first answer and stores and publishes no second report.
        """
        return act(headers, assignment_id, usecases.progress, data["note"])


@blp.route("/<assignment_id>/resolve")
class Resolve(MethodView):
    @require("partner")
    @blp.arguments(IdempotencyHeader(), location="headers")
    @blp.arguments(ResolveIn())
    @blp.response(200, AssignmentOut)
    @_documented()
    def post(self, headers, data, assignment_id: str):
        """Resolve (办结) an accepted assignment with the answer given to the visitor.

        Send an ``Idempotency-Key`` header: a retry with the same key and body returns
        the first answer (200, not the 409 of a second resolve) and does nothing again.
        """
        return act(headers, assignment_id, usecases.resolve, data["answer"])


@blp.route("/<assignment_id>/extension")
class Extension(MethodView):
    @require("partner")
    @blp.arguments(IdempotencyHeader(), location="headers")
    @blp.arguments(ExtensionIn())
    @blp.response(200, ExtensionOut)
    @_documented()
    def post(self, headers, data, assignment_id: str):
        """Ask for more time: the first extension up to the policy's days is granted at once.

        Any other waits for the supervising unit (``granted`` false). Send an
        ``Idempotency-Key`` header: a retry with the same key and body returns the first
        answer and asks for nothing more.
        """
        return act(
            headers,
            assignment_id,
            usecases.request_extension,
            data["days"],
            data["reason"],
            default_unit=rules.default_unit(),
        )


@blp.route("/<assignment_id>/extension/decision")
class ExtensionDecision(MethodView):
    @require("supervisor", "admin")
    @blp.arguments(IdempotencyHeader(), location="headers")
    @blp.arguments(ExtensionDecisionIn())
    @blp.response(200, AssignmentOut)
    @_documented()
    def post(self, headers, data, assignment_id: str):
        """Grant or refuse a pending extension, as the supervising unit (or an admin).

        Send an ``Idempotency-Key`` header: a retry with the same key and body returns
        the first answer and decides nothing again.
        """
        return act(
            headers,
            assignment_id,
            usecases.decide_extension,
            data["grant"],
            data["reason"],
            data.get("days"),
        )


@blp.route("/<assignment_id>/arbitration")
class Arbitration(MethodView):
    @require("supervisor", "admin")
    @blp.arguments(IdempotencyHeader(), location="headers")
    @blp.arguments(ArbitrationIn())
    @blp.response(200, AssignmentOut)
    @_documented("Bad fields; unit is unknown or inactive")
    def post(self, headers, data, assignment_id: str):
        """Decide an arbitration: name the unit that must handle the case.

        Only the supervising unit named in ``assignment.arbitration_requested`` (or an
        admin) decides; the answer is the assignment that went to arbitration. Send an
        ``Idempotency-Key`` header: a retry with the same key and body returns the first
        answer and decides nothing again.
        """
        return act(headers, assignment_id, usecases.arbitrate, data["unit"], data["reason"])


@blp.route("/<assignment_id>/co-handlers")
class CoHandlers(MethodView):
    @require("partner")
    @blp.arguments(IdempotencyHeader(), location="headers")
    @blp.arguments(CoHandlerIn())
    @blp.response(201, AssignmentOut)
    @_documented("Bad fields; unit is unknown, inactive, or the lead unit itself")
    def post(self, headers, data, assignment_id: str):
        """Ask another unit to co-handle (协办) your unit's case; answers the new assignment.

        The co-handling unit gets ``case.routed`` with ``role: co`` and the lead's due date;
        it may accept, report progress, resolve its part, or return (decline) it. Send an
        ``Idempotency-Key`` header: a retry with the same key and body returns the first
        answer (201, not the 409 of asking the same unit again) and asks no one else.
        """
        return act(
            headers,
            assignment_id,
            usecases.add_co_handler,
            data["unit"],
            data["reason"],
            made=True,
        )
