"""``/v1/deliveries``: where each message stands, failed ones for an operator, and letters.

A delivery is a notification seen from the sending side: attempts, last error, next
attempt. Operators list the failed ones (``?status=failed``) and send one again
(``POST /v1/deliveries/<id>/retry``); the desk prints a visitor's letter as HTML or
PDF. Reading follows the notifications' rule (a reception desk sees its own unit's
cases); retrying is for admins.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response, current_app
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import RAISE
from sqlalchemy import select
from sqlalchemy.orm import Session

from notify import models
from notify.access import READERS, ensure_can_read, visible
from notify.notifications import notification_view
from notify.schemas import DeliveriesQuery, DeliveryOut
from servicekit.auth import current_principal, require

blp = Blueprint(
    "deliveries",
    __name__,
    url_prefix="/v1/deliveries",
    description="Deliveries: attempts, failures, operator retries, printable letters.",
)

RETRYABLE = (models.FAILED,)
ON_ITS_WAY = (models.PENDING, models.SENDING)


def delivery_view(session: Session, notification: models.Notification) -> dict[str, Any]:
    """Return a notification with its delivery state (recipient masked)."""
    return {
        **notification_view(session, notification),
        "recipient_ref": notification.recipient_ref or None,
        "occasion": notification.occasion or None,
        "attempts": notification.attempts,
        "next_attempt_at": notification.next_attempt_at,
        "last_error": notification.last_error,
        "delivered_at": notification.delivered_at,
    }


def _load(session: Session, delivery_id: str) -> models.Notification:
    try:
        uuid.UUID(delivery_id)
    except ValueError:
        abort(404, message="no such delivery")
    notification = session.get(models.Notification, delivery_id)
    if notification is None:
        abort(404, message="no such delivery")
    ensure_can_read(current_principal(), notification)
    return notification


@blp.route("")
class Deliveries(MethodView):
    @require(*READERS)
    @blp.arguments(DeliveriesQuery(), location="query", unknown=RAISE)
    @blp.response(200, DeliveryOut(many=True))
    @blp.alt_response(401, description="No valid bearer token.")
    @blp.alt_response(403, description="Not reception, supervisor or admin.")
    @blp.alt_response(422, description="Bad query arguments, field by field.")
    def get(self, args):
        """List deliveries, oldest first, filtered by status, case, channel or recipient."""
        n = models.Notification
        query = select(n).order_by(n.created_at, n.id)
        for name in ("status", "channel", "recipient_kind", "kind"):
            if args.get(name):
                query = query.where(getattr(n, name) == args[name])
        if args.get("case"):
            query = query.where(n.case_number == args["case"])
        query = query.offset(args["offset"]).limit(args["limit"])
        with current_app.extensions["runtime"].reading() as session:
            found = session.scalars(visible(session, query, current_principal())).all()
            return [delivery_view(session, row) for row in found]


@blp.route("/<delivery_id>")
class DeliveryById(MethodView):
    @require(*READERS)
    @blp.response(200, DeliveryOut)
    @blp.alt_response(401, description="No valid bearer token.")
    @blp.alt_response(404, description="No such delivery for your unit.")
    def get(self, delivery_id: str):
        """Read one delivery."""
        with current_app.extensions["runtime"].reading() as session:
            return delivery_view(session, _load(session, delivery_id))


@blp.route("/<delivery_id>/retry")
class Retry(MethodView):
    @require("admin")
    @blp.response(200, DeliveryOut)
    @blp.alt_response(401, description="No valid bearer token.")
    @blp.alt_response(403, description="Only an admin retries deliveries.")
    @blp.alt_response(404, description="No such delivery.")
    @blp.alt_response(409, description="Not failed: delivered, or not yet addressable.")
    def post(self, delivery_id: str):
        """Send a failed delivery again, with a fresh set of attempts.

        Idempotent: retrying one already pending or being sent changes nothing.
        """
        with current_app.extensions["runtime"].sessions() as session:
            notification = _load(session, delivery_id)
            if notification.status in ON_ITS_WAY:
                return delivery_view(session, notification)
            if notification.status not in RETRYABLE:
                abort(
                    409,
                    message=f"only a failed delivery can be retried; this one is "
                    f"{notification.status}",
                )
            notification.status = models.PENDING
            notification.attempts = 0
            notification.next_attempt_at = None
            notification.updated_at = models.now()
            session.commit()
            return delivery_view(session, notification)


def _letter(delivery_id: str) -> models.Letter:
    with current_app.extensions["runtime"].reading() as session:
        notification = _load(session, delivery_id)
        letter = session.get(models.Letter, notification.id)
        if letter is None:
            abort(404, message="no letter: not a letter, or not printed yet")
        return letter


@blp.route("/<delivery_id>/letter.html")
class LetterHtml(MethodView):
    @require(*READERS)
    @blp.response(200, description="The letter as HTML.", content_type="text/html")
    @blp.alt_response(404, description="No such letter for your unit.")
    def get(self, delivery_id: str):
        """Return the printed letter to the visitor (致来访者的一封信) as HTML."""
        letter = _letter(delivery_id)
        return Response(letter.html, mimetype="text/html")


@blp.route("/<delivery_id>/letter.pdf")
class LetterPdf(MethodView):
    @require(*READERS)
    @blp.response(200, description="The letter as PDF.", content_type="application/pdf")
    @blp.alt_response(404, description="No such letter for your unit.")
    def get(self, delivery_id: str):
        """Return the printed letter to the visitor as PDF."""
        letter = _letter(delivery_id)
        return Response(letter.pdf, mimetype="application/pdf")
