"""What notify reads from other services' events: its own schemas of their payloads.

Each schema keeps only what notify uses and ignores the rest (``unknown = EXCLUDE``),
so a producer may add fields without breaking us; what notify does use is checked,
and an event that fails is poison (dead-lettered), never half applied. Error
messages name fields, never echo values: they are logged, and values may be PII.
"""

from __future__ import annotations

import json
from typing import Any

from marshmallow import (
    EXCLUDE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates,
    validates_schema,
)

from eventbus.envelope import PoisonMessage, ReceivedEvent
from servicekit import pii
from servicekit.text import FullMatch

ID = FullMatch(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$", error="must be an id")
UNIT_CODE = FullMatch(r"^[a-z0-9][a-z0-9-]{0,62}$", error="must be a unit code")
CASE_NUMBER = FullMatch(r"^[a-z0-9][a-z0-9-]{0,62}-\d{8}-\d{4,}$", error="must be a case number")
PHONE = FullMatch(r"^\+?\d{5,15}$", error="must be a phone number of 5 to 15 digits")
ROLE = validate.OneOf(["lead", "co"])
LANGUAGE = FullMatch(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$", error="must be a language tag")


class AccusedIn(Schema):
    """Whom a complaint accuses: notify reads the unit (its notifications are kept from it)."""

    class Meta:
        unknown = EXCLUDE

    unit = fields.String(load_default=None, allow_none=True, validate=UNIT_CODE)


class CaseRegisteredIn(Schema):
    """``case.registered`` from intake: the case and the visit it was raised in."""

    class Meta:
        unknown = EXCLUDE

    # Present (a unit, an official or both) when the case is a complaint; else None.
    accused = fields.Nested(AccusedIn, load_default=None, allow_none=True)

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


_visitor = VisitorIn()


class SealedContact(fields.Field):
    """The visitor's contact as intake seals it: one token of its JSON under NIGHTTALK_PII_KEY.

    Opened once, here, and checked as :class:`VisitorIn`. A token this service cannot
    open (its key is not intake's) is an error of the event, which makes it poison: an
    operator sees it in the dead letters, where a visit without a contact would hide it.
    """

    default_error_messages = {
        "invalid": "must be a sealed contact",
        "unopenable": (
            "cannot be opened: not sealed with notify's NIGHTTALK_PII_KEY "
            "(it must be the key intake seals with)"
        ),
        "malformed": "opens to no contact object",
    }
    # A contact of the longest name and address intake accepts seals to about 1,200.
    MAX_LENGTH = 4000

    def _deserialize(self, value, attr, data, **kwargs) -> dict[str, Any]:
        if not isinstance(value, str) or not value or len(value) > self.MAX_LENGTH:
            raise self.make_error("invalid")
        try:
            opened = pii.decrypt(value)
        except ValueError:  # opened, but not to UTF-8 text
            raise self.make_error("malformed") from None
        if opened is None:
            raise self.make_error("unopenable")
        try:
            contact = json.loads(opened)
        except ValueError:
            raise self.make_error("malformed") from None
        if not isinstance(contact, dict):
            raise self.make_error("malformed")
        return _visitor.load(contact)


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
    sealed_contact = SealedContact(load_default=None)
    # In clear in the events intake published before it sealed the contact: read still,
    # for those left in queues, outboxes or dead letters when the new version came.
    visitor = fields.Nested(VisitorIn, load_default=None)
    language = fields.String(load_default="zh", validate=LANGUAGE)
    cases = fields.List(
        fields.Nested(CaseRefIn), load_default=list, validate=validate.Length(max=100)
    )

    @validates_schema
    def _carries_a_contact(self, data, **_kwargs):
        if data.get("sealed_contact") is None and data.get("visitor") is None:
            raise ValidationError("Missing data for required field.", "sealed_contact")

    @post_load
    def _opened(self, data, **_kwargs) -> dict[str, Any]:
        """Give the handler the contact as ``visitor``, however it travelled."""
        sealed = data.pop("sealed_contact")
        if sealed is not None:
            data["visitor"] = sealed
        return data


class CaseEventIn(Schema):
    """Fields every case event notify reads carries."""

    class Meta:
        unknown = EXCLUDE

    case_id = fields.String(required=True, validate=ID)
    case_number = fields.String(required=True, validate=CASE_NUMBER)


class CaseRoutedIn(CaseEventIn):
    """``case.routed`` from routing: a unit took (lead) or shares (co) the case."""

    assignment_id = fields.String(required=True, validate=ID)
    unit = fields.String(required=True, validate=UNIT_CODE)
    role = fields.String(load_default="lead", validate=ROLE)
    routed_at = fields.AwareDateTime(load_default=None, allow_none=True)
    due_at = fields.AwareDateTime(load_default=None, allow_none=True)
    category = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=60))
    summary = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))
    location = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))
    receiving_unit = fields.String(load_default=None, allow_none=True, validate=UNIT_CODE)
    confidential = fields.Boolean(load_default=False)


# The producers' bounds: a consumer accepts everything its producer can emit (an event
# refused here is dead-lettered and its recipient never told). tests/test_notify_contract.py
# reads each from the producer's own input schema.
ANSWER_MAX = 5000  # routing's ResolveIn.answer
ON_SPOT_ANSWER_MAX = 2000  # intake's DispositionIn.answer
SUPERVISOR_MAX = 100  # supervision's SupervisorIn.supervisor (a ladder's: routing's leader, 50)
LADDER_LEVELS = range(1, 10)  # supervision's LadderStepIn.level


class AssignmentResolvedIn(CaseEventIn):
    """``assignment.resolved`` from routing: the unit's answer to the visitor."""

    assignment_id = fields.String(required=True, validate=ID)
    unit = fields.String(required=True, validate=UNIT_CODE)
    answer = fields.String(required=True, validate=validate.Length(min=1, max=ANSWER_MAX))
    occurred_at = fields.AwareDateTime(load_default=None, allow_none=True)
    # Lead or co-handler (协办); None in routing's events from before it named the role.
    role = fields.String(load_default=None, allow_none=True, validate=ROLE)


class ExtensionGrantedIn(CaseEventIn):
    """``assignment.extension_granted`` from routing: the lead's due date moved.

    The reason and who granted it are internal: notify reads neither.
    """

    assignment_id = fields.String(required=True, validate=ID)
    unit = fields.String(required=True, validate=UNIT_CODE)
    due_at = fields.AwareDateTime(required=True)
    occurred_at = fields.AwareDateTime(load_default=None, allow_none=True)
    role = fields.String(load_default=None, allow_none=True, validate=ROLE)


class ResolvedOnSpotIn(CaseEventIn):
    """``case.resolved_on_spot`` from intake: answered at the desk."""

    unit = fields.String(required=True, validate=UNIT_CODE)
    answer = fields.String(required=True, validate=validate.Length(min=1, max=ON_SPOT_ANSWER_MAX))
    resolved_at = fields.AwareDateTime(load_default=None, allow_none=True)


class DeadlineIn(CaseEventIn):
    """``case.warning`` / ``case.overdue`` from supervision."""

    unit = fields.String(required=True, validate=UNIT_CODE)
    due_at = fields.AwareDateTime(load_default=None, allow_none=True)
    occurred_at = fields.AwareDateTime(load_default=None, allow_none=True)


class EscalatedIn(DeadlineIn):
    """``case.escalated`` from supervision: a rung of the ladder (listed supervision), or
    ``major``, a major case given a named supervisor."""

    level = fields.Raw(required=True)
    supervisor_unit = fields.String(required=True, validate=UNIT_CODE)
    supervisor = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(max=SUPERVISOR_MAX)
    )

    @validates("level")
    def _level(self, value, **_kwargs):
        # An admin may give a ladder step any level supervision accepts, not only 1 and 2.
        if str(value) not in {str(n) for n in LADDER_LEVELS} | {"major"}:
            raise ValidationError(
                f"must be a ladder level ({LADDER_LEVELS.start} to {LADDER_LEVELS.stop - 1}) "
                "or 'major'"
            )


EMAIL = validate.Email(error="must be an e-mail address")
URL = validate.URL(schemes={"http", "https"}, require_tld=False, error="must be an http(s) URL")


class UnitChangedIn(Schema):
    """``unit.changed`` from routing: a full snapshot of a unit in the directory.

    ``email``, ``phone``, ``webhook_url``, ``leader_email``, ``leader_phone`` and
    ``language`` are read when routing sends them (not yet in its contract).
    """

    class Meta:
        unknown = EXCLUDE

    code = fields.String(required=True, validate=UNIT_CODE)
    name = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=100))
    level = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=20))
    parent = fields.String(load_default=None, allow_none=True, validate=UNIT_CODE)
    leader = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=50))
    active = fields.Boolean(load_default=True)
    revision = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    email = fields.String(
        load_default=None, allow_none=True, validate=[EMAIL, validate.Length(max=254)]
    )
    phone = fields.String(load_default=None, allow_none=True, validate=PHONE)
    webhook_url = fields.String(
        load_default=None, allow_none=True, validate=[URL, validate.Length(max=500)]
    )
    leader_email = fields.String(
        load_default=None, allow_none=True, validate=[EMAIL, validate.Length(max=254)]
    )
    leader_phone = fields.String(load_default=None, allow_none=True, validate=PHONE)
    language = fields.String(load_default="zh", allow_none=True, validate=LANGUAGE)


def load(schema: Schema, event: ReceivedEvent) -> dict[str, Any]:
    """Return the event's data loaded by ``schema``, or raise PoisonMessage naming the fields."""
    try:
        return schema.load(event.data)
    except ValidationError as exc:
        raise PoisonMessage(f"invalid {event.type} data: {exc.messages}") from exc
