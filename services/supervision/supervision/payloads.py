"""What supervision reads from other services' events, validated by its own schemas.

The producers own their payloads; these schemas name only the fields supervision
uses and ignore the rest (``unknown = EXCLUDE``), so a producer may add fields
without breaking us. Anything else that is wrong makes the event poison.

Each bound is at least the producer's own: a consumer accepts everything its producer
can emit (a refused event is dead-lettered and its effect lost). Texts are bounded by
what the producer takes at its door (routing's ``schemas.py``, intake's), ``by`` by the
longest token subject servicekit lets a caller have (``auth.MAX_SUBJECT``);
``tests/test_supervision_contract.py`` reads those limits and fails when one grows.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from eventbus.envelope import PoisonMessage, ReceivedEvent
from servicekit.text import FullMatch

IDENTIFIER = validate.Length(min=1, max=64)
UNIT_CODE = FullMatch(r"^[a-z0-9][a-z0-9-]{0,63}$", error="must be a unit code")
CASE_NUMBER = FullMatch(r"^[a-z0-9][a-z0-9-]{0,89}$", error="must be a case number")
CATEGORY = FullMatch(r"^[a-z0-9][a-z0-9_-]{0,39}$", error="must be a category slug")
CHANNEL = FullMatch(r"^[a-z0-9][a-z0-9_-]{0,19}$", error="must be a channel slug")


def identifier(**kwargs) -> fields.String:
    """An id of another service's record (a UUID today; any bounded string is accepted)."""
    return fields.String(validate=IDENTIFIER, **kwargs)


def unit_code(**kwargs) -> fields.String:
    """A unit code such as ``lw-buwen``."""
    return fields.String(validate=UNIT_CODE, **kwargs)


# Years 1900-2999, as the API takes them: an instant of year 1 east of UTC or of year 9999
# west of it has no UTC to store (OverflowError, retried until the delivery limit).
FIRST_YEAR, LAST_YEAR = 1900, 2999


def on_the_calendar(value) -> None:
    """Refuse an instant or day outside the years 1900 to 2999 (an instant's year in UTC).

    In UTC because routing stores and announces instants so: 23:00 on 31 December 2999 at
    UTC-5, taken here, would come back as year 3000 and be refused on its way back.
    """
    # The year as given first: converting year 1 or 9999 could overflow.
    if FIRST_YEAR <= value.year <= LAST_YEAR and isinstance(value, dt.datetime) and value.tzinfo:
        value = value.astimezone(dt.UTC)
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValidationError(f"must be in the years {FIRST_YEAR} to {LAST_YEAR}")


def instant(**kwargs) -> fields.AwareDateTime:
    """An ISO 8601 instant with its offset: a naive time cannot be placed on a timeline."""
    return fields.AwareDateTime(validate=on_the_calendar, **kwargs)


class _Payload(Schema):
    class Meta:
        unknown = EXCLUDE


class Disposition(_Payload):
    action = fields.String(required=True, validate=validate.Length(min=1, max=20))
    unit = unit_code(allow_none=True)


class Accused(_Payload):
    unit = unit_code(allow_none=True)
    person = fields.String(allow_none=True, validate=validate.Length(max=50))


class CaseRegistered(_Payload):
    """intake's ``case.registered``."""

    case_id = identifier(required=True)
    case_number = fields.String(required=True, validate=CASE_NUMBER)
    unit = unit_code(required=True)
    channel = fields.String(required=True, validate=CHANNEL)
    received_at = instant(required=True)
    category = fields.String(required=True, validate=CATEGORY)
    summary = fields.String(validate=validate.Length(max=200))
    status = fields.String(required=True, validate=validate.OneOf(["open", "resolved_on_spot"]))
    due_at = instant(allow_none=True, load_default=None)
    disposition = fields.Nested(Disposition, required=True)
    accused = fields.Nested(Accused, allow_none=True, load_default=None)
    repeat_of = identifier(allow_none=True, load_default=None)


class CaseResolvedOnSpot(_Payload):
    """intake's ``case.resolved_on_spot``."""

    case_id = identifier(required=True)
    case_number = fields.String(required=True, validate=CASE_NUMBER)
    unit = unit_code(required=True)
    answer = fields.String(allow_none=True, validate=validate.Length(max=2000))
    resolved_at = instant(required=True)


class CaseRouted(_Payload):
    """routing's ``case.routed``."""

    case_id = identifier(required=True)
    case_number = fields.String(required=True, validate=CASE_NUMBER)
    assignment_id = identifier(required=True)
    unit = unit_code(required=True)
    role = fields.String(validate=validate.Length(max=20))
    routed_at = instant(required=True)
    due_at = instant(required=True)
    receiving_unit = unit_code(required=True)
    category = fields.String(allow_none=True, validate=CATEGORY)
    channel = fields.String(allow_none=True, validate=CHANNEL)
    confidential = fields.Boolean(load_default=False)


class VisitRegistered(_Payload):
    """intake's ``visit.registered``."""

    visit_id = identifier(required=True)
    unit = unit_code(required=True)
    channel = fields.String(required=True, validate=CHANNEL)
    received_at = instant(required=True)
    headcount = fields.Integer(strict=True, required=True, validate=validate.Range(min=1))
    case_ids = fields.List(identifier(), load_default=list, validate=validate.Length(max=1000))
    follow_ups = fields.List(
        fields.String(validate=CASE_NUMBER), load_default=list, validate=validate.Length(max=1000)
    )


class VisitFollowedUp(_Payload):
    """intake's ``visit.followed_up``: a repeat visit about a known case."""

    visit_id = identifier(required=True)
    case_id = identifier(required=True)
    case_number = fields.String(required=True, validate=CASE_NUMBER)
    unit = unit_code(required=True)
    channel = fields.String(required=True, validate=CHANNEL)
    received_at = instant(required=True)


class AssignmentEvent(_Payload):
    """The fields every ``assignment.*`` event of routing carries."""

    case_id = identifier(required=True)
    case_number = fields.String(required=True, validate=CASE_NUMBER)
    assignment_id = identifier(required=True)
    unit = unit_code(required=True)
    occurred_at = instant(required=True)
    # lead or co (协办); events published before routing marked it carry none.
    role = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=20))
    by = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=100))
    reason = fields.String(allow_none=True, validate=validate.Length(max=2000))
    note = fields.String(allow_none=True, validate=validate.Length(max=2000))
    # routing's ResolveIn takes an answer of up to 5000 characters.
    answer = fields.String(allow_none=True, validate=validate.Length(max=5000))
    to_unit = unit_code(allow_none=True)
    supervising_unit = unit_code(allow_none=True)
    granted_by = fields.String(allow_none=True, validate=validate.Length(max=100))


class ExtensionGranted(AssignmentEvent):
    """routing's ``assignment.extension_granted``: the new due date is required."""

    due_at = instant(required=True)


class UnitChanged(_Payload):
    """routing's ``unit.changed``: a full snapshot of one unit of the directory."""

    code = unit_code(required=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    level = fields.String(required=True, validate=validate.OneOf(["city", "county", "township"]))
    parent = unit_code(allow_none=True, load_default=None)
    area = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=64))
    leader = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=100))
    active = fields.Boolean(load_default=True)
    revision = fields.Integer(strict=True, required=True, validate=validate.Range(min=0))


@functools.cache
def _reader(schema: type[Schema]) -> Schema:
    # One instance per schema: building one copies every field, which cost more than
    # the load itself.
    return schema()


def load(schema: type[Schema], event: ReceivedEvent, subject_field: str) -> dict[str, Any]:
    """Return the event's data as the schema reads it, or raise PoisonMessage saying why.

    The CloudEvent's subject must name the same record as the data: an event about one
    case carrying another's data could never be applied right, however often retried.
    """
    try:
        data = _reader(schema).load(event.data)
    except ValidationError as exc:
        raise PoisonMessage(f"invalid {event.type} data: {exc.messages}") from exc
    if event.subject is not None and event.subject != data[subject_field]:
        raise PoisonMessage(
            f"{event.type}: subject {event.subject!r} differs from {subject_field} "
            f"{data[subject_field]!r}"
        )
    return data
