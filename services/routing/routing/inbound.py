"""What routing reads from other services' events, in routing's own schemas.

Producers may add fields (``unknown = EXCLUDE``); what routing relies on is
checked here, and an event that fails is a PoisonMessage (dead-lettered, never
retried). Fields routing has no use for — the visitor pseudonym among them — are
not declared, so they are dropped on load and never stored.
"""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from eventbus.envelope import PoisonMessage, ReceivedEvent
from routing.directory import UNIT_CODE
from routing.rules import RESOLVED_ON_SPOT, ROUTE, SIGN_OVER
from servicekit.text import FullMatch


class _Lenient(Schema):
    class Meta:
        unknown = EXCLUDE


class AccusedIn(_Lenient):
    unit = fields.String(load_default=None, allow_none=True, validate=UNIT_CODE)
    person = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=50))


class DispositionIn(_Lenient):
    action = fields.String(
        required=True, validate=validate.OneOf((RESOLVED_ON_SPOT, SIGN_OVER, ROUTE))
    )
    unit = fields.String(load_default=None, allow_none=True, validate=UNIT_CODE)

    @validates_schema
    def _unit_when_signed_over(self, data, **kwargs):
        if data.get("action") == SIGN_OVER and not data.get("unit"):
            raise ValidationError("a case signed over names the unit", "unit")


class CaseRegisteredIn(_Lenient):
    """``case.registered`` as intake publishes it, the fields routing uses."""

    case_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    case_number = fields.String(required=True, validate=validate.Length(min=1, max=90))
    unit = fields.String(required=True, validate=UNIT_CODE)
    channel = fields.String(required=True, validate=validate.Length(min=1, max=20))
    received_at = fields.AwareDateTime(required=True)
    category = fields.String(required=True, validate=validate.Length(min=1, max=40))
    summary = fields.String(required=True, validate=validate.Length(min=1, max=200))
    details = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=5000))
    location = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))
    accused = fields.Nested(AccusedIn, load_default=None, allow_none=True)
    disposition = fields.Nested(DispositionIn, required=True)


# One instance, built once: building one copies every field, which cost more than a load.
_CASE_REGISTERED = CaseRegisteredIn()


def case_registered(event: ReceivedEvent) -> dict[str, Any]:
    """Return the checked data of a ``case.registered`` event, or raise PoisonMessage."""
    try:
        data = _CASE_REGISTERED.load(event.data)
    except ValidationError as exc:
        # The messages name fields and rules, never the values sent.
        raise PoisonMessage(f"invalid case.registered data: {exc.messages}") from exc
    if event.subject and event.subject != data["case_id"]:
        raise PoisonMessage("case.registered subject is not its case_id")
    return data


class CaseReopenedIn(_Lenient):
    """``case.reopened`` as supervision publishes it."""

    case_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    case_number = fields.String(required=True, validate=validate.Length(min=1, max=90))
    unit = fields.String(required=True, validate=UNIT_CODE)
    reason = fields.String(load_default="reopened", validate=validate.Length(max=500))
    occurred_at = fields.AwareDateTime(required=True)


# A unit code as supervision's schemas take one: up to 64 characters, one more than routing's
# directory holds. A longer code than a unit can have is then an unknown unit (poison, said
# so), not a malformed event: what supervision accepts, routing reads.
SUPERVISION_UNIT_CODE = FullMatch(r"^[a-z0-9][a-z0-9-]{0,63}$", error="must be a unit code")


class MeetingDecisionIn(_Lenient):
    """``meeting.decision_recorded`` as supervision publishes it.

    Bounded as supervision's ``DecisionIn`` bounds the meeting's input: a note of up to 2000
    characters, a due date anywhere it takes one (years 1900 to 2999, any offset).
    """

    case_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    case_number = fields.String(required=True, validate=validate.Length(min=1, max=90))
    decision = fields.String(required=True, validate=validate.OneOf(("reassign", "extend", "note")))
    unit = fields.String(load_default=None, allow_none=True, validate=SUPERVISION_UNIT_CODE)
    due_at = fields.AwareDateTime(load_default=None, allow_none=True)
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))
    # When the meeting's decision was recorded: a later one on the same case supersedes it.
    occurred_at = fields.AwareDateTime(load_default=None, allow_none=True)

    @validates_schema
    def _what_the_decision_needs(self, data, **kwargs):
        if data.get("decision") == "reassign" and not data.get("unit"):
            raise ValidationError("a reassignment names the unit", "unit")
        if data.get("decision") == "extend" and not data.get("due_at"):
            raise ValidationError("an extension names the new due date", "due_at")


def _checked(event: ReceivedEvent, schema: Schema, name: str) -> dict[str, Any]:
    try:
        data = schema.load(event.data)
    except ValidationError as exc:
        raise PoisonMessage(f"invalid {name} data: {exc.messages}") from exc
    if event.subject and event.subject != data["case_id"]:
        raise PoisonMessage(f"{name} subject is not its case_id")
    return data


def case_reopened(event: ReceivedEvent) -> dict[str, Any]:
    """Return the checked data of a ``case.reopened`` event, or raise PoisonMessage."""
    return _checked(event, CaseReopenedIn(), "case.reopened")


def meeting_decision(event: ReceivedEvent) -> dict[str, Any]:
    """Return the checked data of a ``meeting.decision_recorded`` event, or raise PoisonMessage.

    A decision announced without ``occurred_at`` is dated by its event's time.
    """
    data = _checked(event, MeetingDecisionIn(), "meeting.decision_recorded")
    if data["occurred_at"] is None:
        data["occurred_at"] = event.time
    return data
