"""What the notifications API accepts and returns, validated field by field."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from notify import models
from servicekit.text import FullMatch

CASE_NUMBER = FullMatch(
    r"^[a-z0-9][a-z0-9-]{0,62}-\d{8}-\d{4,}$",
    error="must be a case number such as 'city-org-20261115-0042'",
)


class NotificationsQuery(Schema):
    """``GET /v1/notifications`` arguments: one case at a time."""

    class Meta:
        unknown = RAISE

    case = fields.String(
        required=True,
        validate=[validate.Length(max=90), CASE_NUMBER],
        metadata={"description": "The case number, e.g. city-org-20261215-0001."},
    )


class DeliveriesQuery(Schema):
    """``GET /v1/deliveries`` arguments: filters and a capped page."""

    class Meta:
        unknown = RAISE

    status = fields.String(validate=validate.OneOf(models.STATUSES))
    channel = fields.String(validate=validate.OneOf(models.CHANNELS))
    recipient_kind = fields.String(validate=validate.OneOf(models.RECIPIENT_KINDS))
    kind = fields.String(validate=validate.OneOf(models.KINDS))
    case = fields.String(validate=[validate.Length(max=90), CASE_NUMBER])
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=100_000))


class RecipientOut(Schema):
    """Who the notification is for, masked: enough to recognise, never in clear."""

    kind = fields.String()
    name = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    address = fields.String(allow_none=True)


class NotificationOut(Schema):
    id = fields.String()
    event_id = fields.String(metadata={"description": "The CloudEvent that caused it."})
    case_id = fields.String()
    case_number = fields.String()
    unit = fields.String(metadata={"description": "The case's receiving unit."})
    kind = fields.String(metadata={"description": ", ".join(models.KINDS)})
    recipient = fields.Nested(RecipientOut)
    channel = fields.String()
    status = fields.String(
        metadata={
            "description": "awaiting_contact, unreachable, pending, sending, delivered or failed."
        }
    )
    language = fields.String()
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()
    payload = fields.Dict(metadata={"description": "What the message template fills in."})


class DeliveryOut(NotificationOut):
    recipient_ref = fields.String(
        allow_none=True, metadata={"description": "The unit, for a unit or leader recipient."}
    )
    occasion = fields.String(allow_none=True)
    attempts = fields.Integer()
    next_attempt_at = fields.AwareDateTime(allow_none=True)
    last_error = fields.String(allow_none=True)
    delivered_at = fields.AwareDateTime(allow_none=True)
