"""What intake reads from routing's and supervision's events, in intake's own schemas.

Producers may add fields (``unknown = EXCLUDE``); what intake relies on is checked
here, and an event that fails is a PoisonMessage (dead-lettered, never retried).
The messages name fields and rules, never the values sent.
"""

from __future__ import annotations

import functools
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from eventbus.envelope import PoisonMessage, ReceivedEvent
from servicekit.text import FullMatch

UNIT_CODE = FullMatch(r"^[a-z0-9][a-z0-9-]{0,63}$", error="must be a unit code")
IDENTIFIER = validate.Length(min=1, max=64)


class _Lenient(Schema):
    class Meta:
        unknown = EXCLUDE


class UnitChangedIn(_Lenient):
    """routing's ``unit.changed``: a full snapshot of one unit, with its revision."""

    code = fields.String(required=True, validate=UNIT_CODE)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    level = fields.String(required=True, validate=validate.Length(min=1, max=20))
    parent = fields.String(load_default=None, allow_none=True, validate=UNIT_CODE)
    active = fields.Boolean(load_default=True)
    revision = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))


class CaseRoutedIn(_Lenient):
    """routing's ``case.routed``: which unit now answers for the case, and by when."""

    case_id = fields.String(required=True, validate=IDENTIFIER)
    assignment_id = fields.String(required=True, validate=IDENTIFIER)
    unit = fields.String(required=True, validate=UNIT_CODE)
    role = fields.String(load_default="lead", validate=validate.OneOf(["lead", "co"]))
    routed_at = fields.AwareDateTime(required=True)
    due_at = fields.AwareDateTime(load_default=None, allow_none=True)


class AssignmentResolvedIn(_Lenient):
    """routing's ``assignment.resolved``: the unit gave its answer.

    ``role`` is the assignment's (lead or co); events published before routing carried
    it have none (None). The answer and ``by`` are not read, so not checked here.
    """

    case_id = fields.String(required=True, validate=IDENTIFIER)
    assignment_id = fields.String(required=True, validate=IDENTIFIER)
    unit = fields.String(required=True, validate=UNIT_CODE)
    role = fields.String(
        load_default=None, allow_none=True, validate=validate.OneOf(["lead", "co"])
    )
    occurred_at = fields.AwareDateTime(required=True)


class ExtensionGrantedIn(_Lenient):
    """routing's ``assignment.extension_granted``: the assignment's new due date."""

    case_id = fields.String(required=True, validate=IDENTIFIER)
    assignment_id = fields.String(required=True, validate=IDENTIFIER)
    due_at = fields.AwareDateTime(required=True)
    occurred_at = fields.AwareDateTime(required=True)


class CaseClosedIn(_Lenient):
    """supervision's ``case.closed``: the visitor's feedback (or its absence) closed it."""

    case_id = fields.String(required=True, validate=IDENTIFIER)
    occurred_at = fields.AwareDateTime(required=True)


class CaseReopenedIn(_Lenient):
    """supervision's ``case.reopened``: the visitor was not satisfied with the answer.

    Only the case and the time are read. ``unit`` (the unit it goes back to) and
    ``reason`` (the visitor's comment, up to supervision's 500 characters, or a default
    sentence) are neither kept nor checked: any value supervision sends is accepted.
    """

    case_id = fields.String(required=True, validate=IDENTIFIER)
    occurred_at = fields.AwareDateTime(required=True)


@functools.cache
def _reader(schema: type[Schema]) -> Schema:
    # One instance per schema: building one copies every field, which cost more than
    # the load itself.
    return schema()


def load(schema: type[Schema], event: ReceivedEvent, *, subject: str | None) -> dict[str, Any]:
    """Return the checked data of an event, or raise PoisonMessage naming what is wrong."""
    try:
        data = _reader(schema).load(event.data)
    except ValidationError as exc:
        raise PoisonMessage(
            f"invalid {event.routing_key or event.type} data: {exc.messages}"
        ) from exc
    if subject and event.subject and event.subject != data[subject]:
        raise PoisonMessage(f"{event.routing_key or event.type}: subject is not its {subject}")
    return data
