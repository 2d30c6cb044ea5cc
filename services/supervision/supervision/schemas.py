"""What supervision's API answers, and the (absent) query arguments it accepts."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields


class NoQuery(Schema):
    """No query arguments: any given is refused, field by field."""

    class Meta:
        unknown = RAISE


class CaseOut(Schema):
    case_id = fields.String()
    case_number = fields.String()
    receiving_unit = fields.String()
    responsible_unit = fields.String(allow_none=True)
    category = fields.String(allow_none=True)
    channel = fields.String(allow_none=True)
    status = fields.String()
    received_at = fields.AwareDateTime(allow_none=True)
    registered = fields.Boolean(
        metadata={"description": "Whether intake's registration has arrived yet."}
    )
    assignment_id = fields.String(allow_none=True)
    routed_at = fields.AwareDateTime(allow_none=True)
    due_at = fields.AwareDateTime(
        allow_none=True,
        metadata={"description": "When the case must be resolved; none once resolved on the spot."},
    )
    resolved_at = fields.AwareDateTime(allow_none=True)
    repeat_of = fields.String(allow_none=True)
    updated_at = fields.AwareDateTime()


class TimelineEntryOut(Schema):
    event_id = fields.String()
    type = fields.String(attribute="event_type")
    occurred_at = fields.AwareDateTime()
    recorded_at = fields.AwareDateTime()
    summary = fields.Dict()


class TimelineOut(Schema):
    case_id = fields.String()
    case_number = fields.String()
    entries = fields.List(fields.Nested(TimelineEntryOut))
    truncated = fields.Boolean(
        metadata={"description": "True if the case has more entries than one answer holds."}
    )
