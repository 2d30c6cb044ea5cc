"""What notify reads from other services' events: its own schemas of their payloads.

Each schema keeps only what notify uses and ignores the rest (``unknown = EXCLUDE``),
so a producer may add fields without breaking us; what notify does use is checked,
and an event that fails is poison (dead-lettered), never half applied. Error
messages name fields, never echo values: they are logged, and values may be PII.
"""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from eventbus.envelope import PoisonMessage, ReceivedEvent

ID = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$", error="must be an id")
UNIT_CODE = validate.Regexp(r"^[a-z0-9][a-z0-9-]{0,62}$", error="must be a unit code")
CASE_NUMBER = validate.Regexp(
    r"^[a-z0-9][a-z0-9-]{0,62}-\d{8}-\d{4,}$", error="must be a case number"
)
PHONE = validate.Regexp(r"^\+?\d{5,15}$", error="must be a phone number of 5 to 15 digits")
LANGUAGE = validate.Regexp(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$", error="must be a language tag")


class CaseRegisteredIn(Schema):
    """``case.registered`` from intake: the case and the visit it was raised in."""

    class Meta:
        unknown = EXCLUDE

    case_id = fields.String(required=True, validate=ID)
    case_number = fields.String(required=True, validate=CASE_NUMBER)
    visit_id = fields.String(required=True, validate=ID)
    unit = fields.String(required=True, validate=UNIT_CODE)
    received_at = fields.AwareDateTime(load_default=None, allow_none=True)
    due_at = fields.AwareDateTime(load_default=None, allow_none=True)
    status = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=30))


class VisitorIn(Schema):
    """The lead visitor's contact: personal data, never logged."""

    class Meta:
        unknown = EXCLUDE

    name = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=50))
    phone = fields.String(load_default=None, allow_none=True, validate=PHONE)
    address = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))


class CaseRefIn(Schema):
    class Meta:
        unknown = EXCLUDE

    case_id = fields.String(required=True, validate=ID)
    case_number = fields.String(required=True, validate=CASE_NUMBER)


class ContactRecordedIn(Schema):
    """``visit.contact_recorded`` from intake: how to reach the visitor about the visit's cases."""

    class Meta:
        unknown = EXCLUDE

    visit_id = fields.String(required=True, validate=ID)
    unit = fields.String(required=True, validate=UNIT_CODE)
    visitor = fields.Nested(VisitorIn, required=True)
    language = fields.String(load_default="zh", validate=LANGUAGE)
    cases = fields.List(
        fields.Nested(CaseRefIn), load_default=list, validate=validate.Length(max=100)
    )


def load(schema: Schema, event: ReceivedEvent) -> dict[str, Any]:
    """Return the event's data loaded by ``schema``, or raise PoisonMessage naming the fields."""
    try:
        return schema.load(event.data)
    except ValidationError as exc:
        raise PoisonMessage(f"invalid {event.type} data: {exc.messages}") from exc
