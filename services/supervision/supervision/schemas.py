"""What supervision's API answers, and the (absent) query arguments it accepts."""

from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from servicekit.openapi import JsonBoolean
from servicekit.pages import CountedPage
from servicekit.text import FullMatch
from supervision.models import STEP_EVENTS, SUPERVISED_BY
from supervision.payloads import FIRST_YEAR, LAST_YEAR, on_the_calendar


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


UNIT_CODE = FullMatch(r"^[a-z0-9][a-z0-9-]{0,63}$", error="must be a unit code")
CATEGORY = FullMatch(r"^[a-z0-9][a-z0-9_-]{0,39}$", error="must be a category slug")
CHANNEL = FullMatch(r"^[a-z0-9][a-z0-9_-]{0,19}$", error="must be a channel slug")
MAX_PAGE_SIZE = 100
MAX_PAGE = 10_000


class Strict(Schema):
    """A request body or query: unknown fields are refused, field by field."""

    class Meta:
        unknown = RAISE


class IdempotencyHeader(Schema):
    idempotency_key = fields.String(
        data_key="Idempotency-Key",
        validate=[
            validate.Length(min=1, max=100),
            FullMatch(r"^[\x21-\x7e]+$", error="must be printable ASCII"),
        ],
    )

    class Meta:
        # Headers carry much besides ours (Host, Authorization...): ignore the rest.
        unknown = "exclude"


# -- the ladder ---------------------------------------------------------------------------


class LadderStepIn(Strict):
    """A ladder step: when it comes due, what it publishes and who supervises."""

    position = fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=100))
    event = fields.String(required=True, validate=validate.OneOf(STEP_EVENTS))
    level = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=1, max=9))
    percent_of_term = fields.Integer(
        strict=True, allow_none=True, validate=validate.Range(min=1, max=100)
    )
    months_after_due = fields.Integer(
        strict=True, allow_none=True, validate=validate.Range(min=0, max=120)
    )
    days_after_due = fields.Integer(
        strict=True, allow_none=True, validate=validate.Range(min=0, max=3660)
    )
    supervised_by = fields.String(allow_none=True, validate=validate.OneOf(SUPERVISED_BY))
    active = JsonBoolean(load_default=True)

    @validates_schema
    def _consistent(self, data, **_kwargs):
        errors: dict[str, list[str]] = {}
        share = data.get("percent_of_term") is not None
        after = data.get("months_after_due") is not None or data.get("days_after_due") is not None
        if share == after:
            message = "give either percent_of_term or months/days_after_due, not both or neither"
            errors["percent_of_term"] = [message]
        if data["event"] == "escalated":
            if data.get("level") is None:
                errors["level"] = ["an escalation needs its level"]
            if data.get("supervised_by") is None:
                errors["supervised_by"] = ["an escalation needs who supervises: unit or city"]
        else:
            if data.get("level") is not None:
                errors["level"] = ["only an escalation has a level"]
            if data.get("supervised_by") is not None:
                errors["supervised_by"] = ["only an escalation has a supervisor"]
        if errors:
            raise ValidationError(errors)


class LadderStepOut(Schema):
    step = fields.String()
    position = fields.Integer()
    event = fields.String()
    level = fields.Integer(allow_none=True)
    percent_of_term = fields.Integer(allow_none=True)
    months_after_due = fields.Integer(allow_none=True)
    days_after_due = fields.Integer(allow_none=True)
    supervised_by = fields.String(allow_none=True)
    active = fields.Boolean()
    updated_at = fields.AwareDateTime()


class LadderOut(Schema):
    steps = fields.List(fields.Nested(LadderStepOut))


STEP_NAME = FullMatch(r"^[a-z0-9][a-z0-9-]{0,29}$", error="must be a step slug")


# -- the board ----------------------------------------------------------------------------


class BoardQuery(Strict):
    unit = fields.String(
        validate=UNIT_CODE,
        metadata={"description": "Only cases of this unit and the units below it."},
    )
    category = fields.String(validate=CATEGORY)
    step = fields.String(validate=STEP_NAME, metadata={"description": "Only cases at this step."})
    page = fields.Integer(strict=False, load_default=1, validate=validate.Range(1, MAX_PAGE))
    page_size = fields.Integer(
        strict=False, load_default=50, validate=validate.Range(1, MAX_PAGE_SIZE)
    )


class BoardCaseOut(Schema):
    case_id = fields.String()
    case_number = fields.String()
    responsible_unit = fields.String(allow_none=True)
    receiving_unit = fields.String()
    category = fields.String(allow_none=True)
    status = fields.String()
    received_at = fields.AwareDateTime(allow_none=True)
    due_at = fields.AwareDateTime(allow_none=True)
    ladder_step = fields.String(allow_none=True)
    ladder_position = fields.Integer()
    major_supervisor = fields.String(allow_none=True)


class BoardLevelOut(Schema):
    step = fields.String(allow_none=True)
    position = fields.Integer()
    count = fields.Integer()


class BoardOut(CountedPage):
    levels = fields.List(fields.Nested(BoardLevelOut))
    items = fields.List(fields.Nested(BoardCaseOut))
    # The board's counts are kept as cases move (board_counts.py): exact at any size.
    total = fields.Integer(metadata={"description": "Cases in all pages, exact."})
    total_exact = fields.Boolean(metadata={"description": "Always true on the board."})


# -- feedback, named supervisor, meeting ---------------------------------------------------


class FeedbackIn(Strict):
    satisfied = JsonBoolean(required=True)
    comment = fields.String(allow_none=True, validate=validate.Length(max=500))


class FeedbackOut(Schema):
    case_number = fields.String()
    status = fields.String()
    outcome = fields.String(allow_none=True)


class SupervisorIn(Strict):
    supervisor = fields.String(required=True, validate=validate.Length(min=1, max=100))
    supervisor_unit = fields.String(required=True, validate=UNIT_CODE)


class SupervisorOut(Schema):
    case_number = fields.String()
    supervisor = fields.String()
    supervisor_unit = fields.String()
    since = fields.String()


DECISIONS = ("reassign", "extend", "note")


class DecisionIn(Strict):
    case = fields.String(
        required=True,
        validate=validate.Length(min=1, max=90),
        metadata={"description": "Case number or id."},
    )
    decision = fields.String(required=True, validate=validate.OneOf(DECISIONS))
    unit = fields.String(allow_none=True, validate=UNIT_CODE)
    due_at = fields.AwareDateTime(
        allow_none=True,
        validate=on_the_calendar,
        metadata={"description": "The new due date, in the years 1900 to 2999."},
    )
    note = fields.String(required=True, validate=validate.Length(min=1, max=2000))

    @validates_schema
    def _consistent(self, data, **_kwargs):
        errors: dict[str, list[str]] = {}
        if data["decision"] == "reassign" and not data.get("unit"):
            errors["unit"] = ["a reassignment names the unit"]
        if data["decision"] == "extend" and not data.get("due_at"):
            errors["due_at"] = ["an extension names the new due date"]
        if data["decision"] != "reassign" and data.get("unit"):
            errors["unit"] = ["only a reassignment names a unit"]
        if data["decision"] != "extend" and data.get("due_at"):
            errors["due_at"] = ["only an extension names a due date"]
        if errors:
            raise ValidationError(errors)


class DecisionOut(Schema):
    case_number = fields.String()
    month = fields.String()
    decision = fields.String()
    unit = fields.String()
    due_at = fields.String()
    note = fields.String()
    occurred_at = fields.String()


# -- statistics ----------------------------------------------------------------------------

MAX_PERIOD_DAYS = 3660


class StatsQuery(Strict):
    from_ = fields.Date(
        data_key="from",
        required=True,
        metadata={"description": "First day (YYYY-MM-DD), in the years 1900 to 2999."},
    )
    to = fields.Date(
        required=True, metadata={"description": "Last day, included, in the years 1900 to 2999."}
    )
    by = fields.String(
        load_default="unit", validate=validate.OneOf(("unit", "category", "month", "channel"))
    )
    unit = fields.String(validate=UNIT_CODE, metadata={"description": "A unit's subtree only."})
    category = fields.String(validate=CATEGORY)
    format = fields.String(validate=validate.OneOf(("json", "csv")))

    @validates_schema
    def _period(self, data, **_kwargs):
        start, end = data.get("from_"), data.get("to")
        # A day of year 1 or 9999 has no local midnight in UTC to convert it to.
        for key, day in (("from", start), ("to", end)):
            if day and not FIRST_YEAR <= day.year <= LAST_YEAR:
                raise ValidationError({key: [f"must be a day from {FIRST_YEAR} to {LAST_YEAR}"]})
        if start and end:
            if end < start:
                raise ValidationError({"to": ["must not be before from"]})
            if (end - start).days > MAX_PERIOD_DAYS:
                raise ValidationError({"to": [f"a period spans at most {MAX_PERIOD_DAYS} days"]})


# -- the joint meeting and the cadre feed --------------------------------------------------

# Years 1900-2999: the programme began in 1996, and a year such as 0000 or 9999 has no
# month boundaries on the calendar (the month after 9999-12 does not exist).
MONTH = FullMatch(
    r"^(19|2[0-9])[0-9]{2}-(0[1-9]|1[0-2])$", error="must be a month: YYYY-MM from 1900 to 2999"
)


class MonthPath(Schema):
    month = fields.String(required=True, validate=MONTH)


class AgendaCaseOut(Schema):
    case_id = fields.String()
    case_number = fields.String()
    category = fields.String(allow_none=True)
    status = fields.String()
    received_at = fields.AwareDateTime(allow_none=True)
    due_at = fields.AwareDateTime(allow_none=True)
    ladder_step = fields.String(allow_none=True)
    level = fields.String(
        allow_none=True,
        metadata={"description": "1, 2 or major: the highest reached by the month's end."},
    )
    major_supervisor = fields.String(allow_none=True)
    decision = fields.Dict(allow_none=True)


class AgendaUnitOut(Schema):
    unit = fields.String()
    name = fields.String(allow_none=True)
    cases = fields.List(fields.Nested(AgendaCaseOut))


class AgendaOut(Schema):
    month = fields.String()
    units = fields.List(fields.Nested(AgendaUnitOut))
    truncated = fields.Boolean()


class CadreQuery(Strict):
    from_ = fields.Date(data_key="from", required=True)
    to = fields.Date(required=True)
    unit = fields.String(validate=UNIT_CODE, metadata={"description": "Accused unit's subtree."})
    page = fields.Integer(strict=False, load_default=1, validate=validate.Range(1, MAX_PAGE))
    page_size = fields.Integer(
        strict=False, load_default=50, validate=validate.Range(1, MAX_PAGE_SIZE)
    )

    @validates_schema
    def _period(self, data, **_kwargs):
        StatsQuery._period(self, data)


class CadreRowOut(Schema):
    accused_unit = fields.String(allow_none=True)
    accused_person = fields.String(allow_none=True)
    complaints = fields.Integer()
    resolved = fields.Integer()
    open = fields.Integer()
    escalated = fields.Integer()


class CadreOut(Schema):
    rows = fields.List(fields.Nested(CadreRowOut))
    page = fields.Integer()
    page_size = fields.Integer()
    total = fields.Integer()
