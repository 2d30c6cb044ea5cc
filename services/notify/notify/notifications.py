"""``/v1/notifications``: what visitors are told about a case, and where each message stands."""

from __future__ import annotations

import uuid
from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import RAISE
from sqlalchemy import select
from sqlalchemy.orm import Session

from notify import models
from notify.access import READERS, ensure_can_read, visible
from notify.recipients import recipient_of
from notify.schemas import NotificationOut, NotificationsQuery
from servicekit.auth import current_principal, require

blp = Blueprint(
    "notifications",
    __name__,
    url_prefix="/v1/notifications",
    description="Notifications: one per case, kind, recipient and channel.",
)


@blp.route("")
class Notifications(MethodView):
    @require(*READERS)
    @blp.arguments(NotificationsQuery(), location="query", unknown=RAISE)
    @blp.response(200, NotificationOut(many=True))
    @blp.alt_response(401, description="No valid bearer token.")
    @blp.alt_response(
        403, description="The token has none of the roles reception, supervisor, admin."
    )
    def get(self, args):
        """List the notifications of a case, oldest first, with recipients masked.

        A reception desk sees the notifications of its own unit's cases only: for
        another unit's case, as for an unknown one, the list is empty.
        """
        principal = current_principal()
        with current_app.extensions["runtime"].reading() as session:
            query = (
                select(models.Notification)
                .where(models.Notification.case_number == args["case"])
                .order_by(models.Notification.created_at, models.Notification.id)
            )
            # One case has one notification per kind, recipient and channel: few rows.
            found = session.scalars(visible(session, query, principal)).all()
            return [notification_view(session, n) for n in found]


@blp.route("/<notification_id>")
class NotificationById(MethodView):
    @require(*READERS)
    @blp.response(200, NotificationOut)
    @blp.alt_response(401, description="No valid bearer token.")
    @blp.alt_response(
        403, description="The token has none of the roles reception, supervisor, admin."
    )
    @blp.alt_response(404, description="No such notification for your unit.")
    def get(self, notification_id: str):
        """Read one notification, with its recipient masked."""
        try:
            uuid.UUID(notification_id)
        except ValueError:
            abort(404, message="no such notification")
        with current_app.extensions["runtime"].reading() as session:
            notification = session.get(models.Notification, notification_id)
            if notification is None:
                abort(404, message="no such notification")
            ensure_can_read(current_principal(), notification)
            return notification_view(session, notification)


def notification_view(session: Session, notification: models.Notification) -> dict[str, Any]:
    """Return a notification as the API shows it: the recipient masked or, if unknown, null."""
    recipient = recipient_of(session, notification)
    return {
        "id": notification.id,
        "event_id": notification.event_id,
        "case_id": notification.case_id,
        "case_number": notification.case_number,
        "unit": notification.unit,
        "kind": notification.kind,
        "recipient": recipient.masked() if recipient else {"kind": notification.recipient_kind},
        "channel": notification.channel,
        "status": notification.status,
        "language": notification.language,
        "created_at": notification.created_at,
        "updated_at": notification.updated_at,
        "payload": notification.payload,
    }
