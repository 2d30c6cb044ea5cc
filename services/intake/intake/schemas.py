"""What the reception desk sends and gets back, validated field by field.

Unknown fields are refused (marshmallow's default), every string and list is
bounded, and the errors name the field that is wrong.
"""

from __future__ import annotations

import datetime as dt

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from intake.catalogue import CATEGORIES, CHANNELS, DISPOSITIONS
from intake.models import STATUSES
from servicekit.pages import CountedPage
from servicekit.text import NO_CONTROL, NOT_BLANK, FullMatch

UNIT_CODE = FullMatch(r"^[a-z0-9][a-z0-9-]{0,62}$", error="must be a unit code such as 'lw-buwen'")
CASE_NUMBER = FullMatch(
    r"^[a-z0-9][a-z0-9-]{0,62}-\d{8}-\d{4,}$",
    error="must be a case number such as 'city-org-20261115-0042'",
)
PHONE = FullMatch(r"^\+?\d{5,15}$", error="must be a phone number of 5 to 15 digits")
ID_NUMBER = FullMatch(
    r"^(\d{15}|\d{17}[\dXx])$", error="must be a 15- or 18-character resident ID number"
)
EARLIEST = dt.datetime(1990, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
MAX_SKEW = dt.timedelta(minutes=10)
OLDEST = dt.timedelta(days=366)


def instant(**kwargs) -> fields.AwareDateTime:
    """An ISO 8601 instant with its offset, between 1990 and 2100 (no overflow on the way in)."""
    return fields.AwareDateTime(
        validate=validate.Range(min=EARLIEST, max=LATEST, error="must be between 1990 and 2100"),
        **kwargs,
    )


def has_control(value: str) -> bool:
    """Return True if a string holds a character :data:`NO_CONTROL` refuses."""
    try:
        NO_CONTROL(value)
    except ValidationError:
        return True
    return False


def text(max_length: int, *, required: bool = False, **kwargs) -> fields.String:
    """A bounded string field without control characters; a required one must not be blank."""
    if required:
        # One pattern, so that the document states both rules (it shows only one).
        validators = [validate.Length(min=1, max=max_length), NOT_BLANK]
    else:
        validators = [validate.Length(max=max_length), NO_CONTROL]
    return fields.String(required=required, validate=validators, **kwargs)


class VisitorIn(Schema):
    name = text(50, required=True)
    phone = fields.String(validate=PHONE)
    id_number = fields.String(validate=ID_NUMBER)
    address = text(200)


class AccusedIn(Schema):
    unit = fields.String(validate=UNIT_CODE)
    person = text(50)

    @validates_schema
    def _one_of(self, data, **kwargs):
        if not data.get("unit") and not data.get("person"):
            raise ValidationError("name the accused unit, person, or both", "_schema")


class DispositionIn(Schema):
    action = fields.String(required=True, validate=validate.OneOf(DISPOSITIONS))
    answer = text(2000)
    unit = fields.String(validate=UNIT_CODE)

    @validates_schema
    def _consistent(self, data, **kwargs):
        action = data.get("action")
        if action == "resolved_on_spot" and not (data.get("answer") or "").strip():
            raise ValidationError("the answer given on the spot is required", "answer")
        if action == "sign_over" and not data.get("unit"):
            raise ValidationError("the unit to sign the case over to is required", "unit")
        if action != "sign_over" and data.get("unit"):
            raise ValidationError("a unit is only given when signing over", "unit")


class IssueIn(Schema):
    category = fields.String(
        required=True,
        validate=validate.OneOf(sorted(CATEGORIES), error="unknown category; one of: {choices}"),
    )
    summary = text(200, required=True)
    details = text(5000)
    location = text(200)
    accused = fields.Nested(AccusedIn)
    disposition = fields.Nested(DispositionIn, required=True)


class VisitIn(Schema):
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    received_at = instant(required=True)
    leader = text(50)
    headcount = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=1000))
    visitor = fields.Nested(VisitorIn, required=True)
    issues = fields.List(
        fields.Nested(IssueIn), load_default=list, validate=validate.Length(max=20)
    )
    follow_ups = fields.List(
        fields.String(validate=CASE_NUMBER), load_default=list, validate=validate.Length(max=20)
    )

    @validates_schema
    def _when(self, data, **kwargs):
        received_at = data.get("received_at")
        if received_at is None:
            return
        now = dt.datetime.now(dt.UTC)
        if received_at > now + MAX_SKEW:
            raise ValidationError("must not be in the future", "received_at")
        if received_at < now - OLDEST:
            raise ValidationError("must be within the last year", "received_at")

    @validates_schema
    def _distinct_follow_ups(self, data, **kwargs):
        follow_ups = data.get("follow_ups") or []
        if len(set(follow_ups)) != len(follow_ups):
            raise ValidationError("a case number is listed twice", "follow_ups")


class ErrorOut(Schema):
    """Every error of the /v1 API: what went wrong, field by field where it applies."""

    code = fields.Integer()
    status = fields.String()
    message = fields.String()
    errors = fields.Dict(
        metadata={"description": "By location (json, query, headers), then by field."}
    )


def timestamp(**kwargs) -> fields.String:
    """An ISO 8601 instant as stored in event payloads and idempotent replays."""
    return fields.String(metadata={"format": "date-time"}, **kwargs)


class CaseCreatedOut(Schema):
    case_id = fields.String()
    case_number = fields.String()
    status = fields.String()
    due_at = timestamp(allow_none=True)
    repeat_of = fields.String(allow_none=True)


class FollowUpOut(Schema):
    case_id = fields.String()
    case_number = fields.String()


class VisitCreatedOut(Schema):
    visit_id = fields.String()
    cases = fields.List(fields.Nested(CaseCreatedOut))
    follow_ups = fields.List(fields.Nested(FollowUpOut))


class VisitorOut(Schema):
    """The lead visitor, masked: enough for a clerk to recognise, never in clear."""

    name = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    id_number = fields.String(allow_none=True)
    address = fields.String(allow_none=True)


class CaseOut(Schema):
    case_id = fields.String(attribute="id")
    case_number = fields.String()
    visit_id = fields.String()
    unit = fields.String()
    channel = fields.String()
    received_at = timestamp()
    category = fields.String()
    summary = fields.String()
    details = fields.String(allow_none=True)
    location = fields.String(allow_none=True)
    accused = fields.Dict(allow_none=True)
    disposition = fields.Dict()
    status = fields.String()
    due_at = timestamp(allow_none=True)
    repeat_of = fields.String(allow_none=True)
    repeat = fields.Boolean(metadata={"description": "Linked to an earlier open case (重复来访)."})
    repeat_count = fields.Integer(
        metadata={
            "description": "Later visits about this case (follow-ups and repeats), each visit"
            " counted once."
        }
    )
    responsible_unit = fields.String(
        allow_none=True, metadata={"description": "The lead unit routing assigned it to."}
    )
    routed_at = timestamp(allow_none=True)
    resolved_at = timestamp(allow_none=True)
    closed_at = timestamp(allow_none=True)
    reopened_at = fields.String(
        allow_none=True,
        metadata={
            "format": "date-time",
            "description": "When supervision last reopened it (the visitor not satisfied"
            " with the answer); kept once it is routed, resolved or closed again.",
        },
    )


MAX_PAGE_SIZE = 100
MAX_PAGE = 10_000


class CaseQuery(Schema):
    """Filters of the case list; unknown arguments are refused."""

    class Meta:
        unknown = RAISE

    status = fields.String(validate=validate.OneOf(STATUSES))
    category = fields.String(
        validate=validate.OneOf(sorted(CATEGORIES), error="unknown category; one of: {choices}")
    )
    channel = fields.String(validate=validate.OneOf(CHANNELS))
    unit = fields.String(
        validate=UNIT_CODE, metadata={"description": "Receiving unit (within your jurisdiction)."}
    )
    repeat = fields.Boolean(metadata={"description": "Only repeats (true) or first visits."})
    from_ = instant(data_key="from", metadata={"description": "Received at or after this instant."})
    to = instant(metadata={"description": "Received before this instant."})
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE))
    page_size = fields.Integer(
        load_default=20,
        validate=validate.Range(min=1, max=MAX_PAGE_SIZE),
        metadata={"description": f"At most {MAX_PAGE_SIZE}."},
    )

    @validates_schema
    def _period(self, data, **kwargs):
        if data.get("from_") and data.get("to") and data["from_"] >= data["to"]:
            raise ValidationError("must be after 'from'", "to")


class CasePageOut(CountedPage):
    items = fields.List(fields.Nested(CaseOut))


class VisitOut(Schema):
    visit_id = fields.String(attribute="id")
    unit = fields.String()
    channel = fields.String()
    received_at = fields.AwareDateTime()
    leader = fields.String(allow_none=True)
    headcount = fields.Integer()
    visitor = fields.Nested(VisitorOut)
    cases = fields.List(fields.Nested(CaseOut))
    follow_ups = fields.List(fields.String())


class IdempotencyHeader(Schema):
    idempotency_key = fields.String(
        data_key="Idempotency-Key",
        validate=[
            validate.Length(min=1, max=200),
            FullMatch(r"^[\x21-\x7e]+$", error="must be printable ASCII"),
        ],
    )

    class Meta:
        # Headers carry much besides ours (Host, Authorization...): ignore the rest.
        unknown = "exclude"


MAX_SESSION = dt.timedelta(hours=12)
SESSION_HORIZON = dt.timedelta(days=366)


class SessionIn(Schema):
    """An extra night-talk session: when it opens and closes (at most 12 hours)."""

    opens_at = instant(required=True)
    closes_at = instant(required=True)
    note = text(200)

    @validates_schema
    def _window(self, data, **kwargs):
        opens, closes = data.get("opens_at"), data.get("closes_at")
        if opens is None or closes is None:
            return
        now = dt.datetime.now(dt.UTC)
        if not now - SESSION_HORIZON <= opens <= now + SESSION_HORIZON:
            raise ValidationError("must be within a year of today", "opens_at")
        if closes <= opens:
            raise ValidationError("must be after opens_at", "closes_at")
        if closes - opens > MAX_SESSION:
            raise ValidationError("a session lasts at most 12 hours", "closes_at")


class SessionOut(Schema):
    session_id = fields.String(
        allow_none=True, metadata={"description": "Only extra sessions have an id."}
    )
    unit = fields.String()
    kind = fields.String(metadata={"description": "night_talk_day or extra."})
    opens_at = timestamp()
    closes_at = timestamp()
    note = fields.String(allow_none=True)


MAX_SESSION_PERIOD = dt.timedelta(days=400)


class SessionQuery(Schema):
    """The period to list sessions for (default: this month and the next two)."""

    class Meta:
        unknown = RAISE

    unit = fields.String(validate=UNIT_CODE, metadata={"description": "Default: your unit."})
    from_ = instant(data_key="from")
    to = instant()

    @validates_schema
    def _period(self, data, **kwargs):
        start, end = data.get("from_"), data.get("to")
        if start and end:
            if end <= start:
                raise ValidationError("must be after 'from'", "to")
            if end - start > MAX_SESSION_PERIOD:
                raise ValidationError("the period spans at most 400 days", "to")


class SessionListOut(Schema):
    items = fields.List(fields.Nested(SessionOut))
    truncated = fields.Boolean(
        metadata={"description": "More extra sessions than one answer holds."}
    )
