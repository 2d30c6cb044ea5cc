"""``/v1/visits``: register a batch of visitors and read it back."""

from __future__ import annotations

import uuid

from flask import current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from intake import models, pii, reception, usecases
from intake.access import ensure_can_read_visit
from intake.schemas import ErrorOut, IdempotencyHeader, VisitCreatedOut, VisitIn, VisitOut
from intake.views import case_view
from servicekit.auth import current_principal, require

blp = Blueprint(
    "visits",
    __name__,
    url_prefix="/v1/visits",
    description="Visits (批): a batch received at a reception desk.",
)


@blp.route("")
class Visits(MethodView):
    @require("reception")
    @blp.arguments(IdempotencyHeader(), location="headers")
    @blp.arguments(VisitIn())
    @blp.response(201, VisitCreatedOut)
    @blp.alt_response(401, schema=ErrorOut, description="No valid bearer token.")
    @blp.alt_response(403, schema=ErrorOut, description="The token lacks the reception role.")
    @blp.alt_response(400, schema=ErrorOut, description="Malformed JSON.")
    @blp.alt_response(413, schema=ErrorOut, description="Body over the size limit.")
    @blp.alt_response(415, schema=ErrorOut, description="Body is not JSON.")
    def post(self, headers, data):
        """Register a visit: its lead visitor, new issues (cases) and follow-ups.

        Send an ``Idempotency-Key`` header: a retry with the same key returns the
        first answer and registers nothing new.
        """
        principal = current_principal()
        key = headers.get("idempotency_key")
        try:
            body, _created = usecases.register_visit(
                current_app.extensions["runtime"].unit_of_work(),
                unit=principal.unit,
                registered_by=principal.sub,
                data=data,
                idempotency_key=key,
                fingerprint=usecases.request_fingerprint(request.get_json(silent=True)),
            )
        except usecases.UnknownCases as exc:
            abort(
                422,
                message="unknown case numbers in follow_ups",
                errors={"json": {"follow_ups": [f"unknown case number: {n}" for n in exc.numbers]}},
            )
        except usecases.OutsideSession:
            abort(
                422,
                message="no night-talk session is open at this time for your unit",
                errors={
                    "json": {
                        "received_at": [
                            "outside the night-talk day ("
                            + reception.schedule().describe()
                            + ") and any extra session of your unit: open one with "
                            "POST /v1/sessions, or register it on another channel"
                        ]
                    }
                },
            )
        except usecases.UnknownUnits as exc:
            abort(
                422,
                message="issues name units the unit directory does not know",
                errors={"json": {"issues": exc.errors}},
            )
        except usecases.IdempotencyConflict:
            abort(
                422,
                message="this Idempotency-Key was already used for a different request",
                errors={"headers": {"Idempotency-Key": ["already used for a different request"]}},
            )
        return body


@blp.route("/<visit_id>")
class VisitById(MethodView):
    @require()
    @blp.response(200, VisitOut)
    @blp.alt_response(401, schema=ErrorOut, description="No valid bearer token.")
    @blp.alt_response(404, schema=ErrorOut, description="No such visit for your unit.")
    def get(self, visit_id: str):
        """Read a visit, with its lead visitor masked.

        A visit about a complaint against the caller's unit or a unit above it (one of
        its cases, a case it follows up or repeats) is 404, as an unknown visit, unless
        the caller's unit received the visit.
        """
        try:
            uuid.UUID(visit_id)
        except ValueError:
            abort(404, message="no such visit")
        runtime = current_app.extensions["runtime"]
        with runtime.reading() as session:
            visit = session.get(models.Visit, visit_id)
            if visit is None:
                abort(404, message="no such visit")
            ensure_can_read_visit(session, current_principal(), visit)
            return {
                "id": visit.id,
                "unit": visit.unit,
                "channel": visit.channel,
                "received_at": visit.received_at,
                "leader": visit.leader,
                "headcount": visit.headcount,
                "visitor": {
                    "name": pii.mask_name(pii.decrypt(visit.visitor_name_enc)),
                    "phone": pii.mask_phone(pii.decrypt(visit.visitor_phone_enc)),
                    "id_number": pii.mask_id_last4(visit.visitor_id_last4),
                    "address": pii.mask_address(pii.decrypt(visit.visitor_address_enc)),
                },
                "cases": [case_view(c) for c in visit.cases],
                "follow_ups": list(visit.follow_ups or []),
            }
