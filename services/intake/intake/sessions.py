"""``/v1/sessions``: the night-talk sessions of a unit, and opening extra ones."""

from __future__ import annotations

import datetime as dt

from flask import current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from sqlalchemy import select

from intake import events, models, reception, usecases
from intake.access import ensure_can_read
from intake.schemas import (
    ErrorOut,
    IdempotencyHeader,
    SessionIn,
    SessionListOut,
    SessionOut,
    SessionQuery,
)
from servicekit.auth import current_principal, require
from servicekit.localtime import local_zone

blp = Blueprint(
    "sessions",
    __name__,
    url_prefix="/v1/sessions",
    description=(
        "Reception sessions: the monthly night-talk day (夜谈日) and extra night-talk "
        "sessions a unit opens. A night-talk visit outside every session is refused."
    ),
)

MAX_EXTRAS = 500
DEFAULT_SPAN = dt.timedelta(days=93)


@blp.route("")
class Sessions(MethodView):
    @require("reception")
    @blp.arguments(IdempotencyHeader(), location="headers")
    @blp.arguments(SessionIn())
    @blp.response(201, SessionOut)
    @blp.alt_response(400, schema=ErrorOut, description="Malformed JSON.")
    @blp.alt_response(401, schema=ErrorOut, description="No valid bearer token.")
    @blp.alt_response(403, schema=ErrorOut, description="The token lacks the reception role.")
    @blp.alt_response(413, schema=ErrorOut, description="Body over the size limit.")
    @blp.alt_response(415, schema=ErrorOut, description="Body is not JSON.")
    def post(self, headers, data):
        """Open an extra night-talk session for your unit (at most 12 hours).

        Night-talk visits received while it is open are accepted. Send an
        ``Idempotency-Key`` header: a retry returns the first answer.
        """
        principal = current_principal()
        try:
            body, _created = usecases.open_session(
                current_app.extensions["runtime"].unit_of_work(),
                unit=principal.unit,
                opened_by=principal.sub,
                data=data,
                idempotency_key=headers.get("idempotency_key"),
                fingerprint=usecases.request_fingerprint(
                    {"sessions": request.get_json(silent=True)}
                ),
            )
        except usecases.IdempotencyConflict:
            abort(
                422,
                message="this Idempotency-Key was already used for a different request",
                errors={"headers": {"Idempotency-Key": ["already used for a different request"]}},
            )
        return body

    @require()
    @blp.arguments(SessionQuery(), location="query", unknown="raise")
    @blp.response(200, SessionListOut)
    @blp.alt_response(401, schema=ErrorOut, description="No valid bearer token.")
    @blp.alt_response(404, schema=ErrorOut, description="No such unit in your jurisdiction.")
    def get(self, query):
        """List a unit's night-talk sessions in a period: the monthly day and extras."""
        principal = current_principal()
        unit = query.get("unit") or principal.unit
        start, end = query.get("from_"), query.get("to")
        if start is None and end is None:
            start = dt.datetime.now(local_zone()).replace(
                day=1, hour=0, minute=0, second=0, microsecond=0
            )
        if end is None:
            end = start + DEFAULT_SPAN
        if start is None:
            start = end - DEFAULT_SPAN
        items = [
            {
                "session_id": None,
                "unit": unit,
                "kind": "night_talk_day",
                "opens_at": events.iso(opens),
                "closes_at": events.iso(closes),
                "note": None,
            }
            for opens, closes in reception.regular_windows(start, end)
        ]
        with current_app.extensions["runtime"].reading() as session:
            ensure_can_read(session, principal, unit)
            extras = session.scalars(
                select(models.ReceptionSession)
                .where(
                    models.ReceptionSession.unit == unit,
                    models.ReceptionSession.closes_at > start,
                    models.ReceptionSession.opens_at < end,
                )
                .order_by(models.ReceptionSession.opens_at)
                .limit(MAX_EXTRAS + 1)
            ).all()
        items += [usecases.session_view(e) for e in extras[:MAX_EXTRAS]]
        items.sort(key=lambda item: dt.datetime.fromisoformat(item["opens_at"]))
        return {"items": items, "truncated": len(extras) > MAX_EXTRAS}
