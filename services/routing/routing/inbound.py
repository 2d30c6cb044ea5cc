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


def case_registered(event: ReceivedEvent) -> dict[str, Any]:
    """Return the checked data of a ``case.registered`` event, or raise PoisonMessage."""
    try:
        data = CaseRegisteredIn().load(event.data)
    except ValidationError as exc:
        # The messages name fields and rules, never the values sent.
        raise PoisonMessage(f"invalid case.registered data: {exc.messages}") from exc
    if event.subject and event.subject != data["case_id"]:
        raise PoisonMessage("case.registered subject is not its case_id")
    return data
