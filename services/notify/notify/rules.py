"""``/v1/rules``: who hears what, as data an admin edits.

A rule says: this event makes this kind of notification for this recipient on this
channel. Only combinations the handlers can fill are accepted (an answer goes to the
visitor, an escalation to the supervising leader), and only channels the recipient
can be reached on (a visitor by SMS or letter; a unit by SMS, e-mail or webhook; a
leader by SMS or e-mail). Changes apply to events handled from then on.
"""

from __future__ import annotations

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, fields, validate, validates_schema
from marshmallow.exceptions import ValidationError
from sqlalchemy import select

from notify import models
from servicekit.auth import require
from servicekit.openapi import JsonBoolean

# What each event can tell, and to whom (the handlers' payloads and recipients).
PRODUCES: dict[str, dict[str, tuple[str, ...]]] = {
    "case.registered": {models.RECEIPT: (models.VISITOR,)},
    "case.routed": {models.ROUTED: (models.VISITOR,), models.ASSIGNMENT: (models.UNIT,)},
    "case.resolved_on_spot": {
        models.ANSWER: (models.VISITOR,),
        models.SATISFACTION: (models.VISITOR,),
    },
    "assignment.resolved": {
        models.ANSWER: (models.VISITOR,),
        models.SATISFACTION: (models.VISITOR,),
    },
    "assignment.extension_granted": {models.EXTENDED: (models.VISITOR,)},
    "case.warning": {models.WARNING: (models.UNIT,)},
    "case.overdue": {models.OVERDUE: (models.UNIT,)},
    "case.escalated": {models.ESCALATED: (models.LEADER,)},
}
REACHABLE_BY: dict[str, tuple[str, ...]] = {
    models.VISITOR: (models.SMS, models.LETTER),
    models.UNIT: (models.SMS, models.EMAIL, models.WEBHOOK),
    models.LEADER: (models.SMS, models.EMAIL),
}

blp = Blueprint(
    "rules", __name__, url_prefix="/v1/rules", description="Who hears what, on which channel."
)


class RuleIn(Schema):
    """A rule to set: switched on or off, created if new."""

    class Meta:
        unknown = RAISE

    event = fields.String(required=True, validate=validate.OneOf(sorted(PRODUCES)))
    kind = fields.String(required=True, validate=validate.OneOf(models.KINDS))
    recipient_kind = fields.String(required=True, validate=validate.OneOf(models.RECIPIENT_KINDS))
    channel = fields.String(required=True, validate=validate.OneOf(models.CHANNELS))
    enabled = JsonBoolean(required=True)

    @validates_schema
    def _combination(self, data, **_kwargs):
        kinds = PRODUCES.get(data.get("event"), {})
        if data.get("kind") not in kinds:
            raise ValidationError(
                f"{data.get('event')} tells only: {', '.join(sorted(kinds))}", "kind"
            )
        if data.get("recipient_kind") not in kinds[data["kind"]]:
            raise ValidationError(
                f"a {data['kind']} goes to: {', '.join(kinds[data['kind']])}", "recipient_kind"
            )
        channels = REACHABLE_BY[data["recipient_kind"]]
        if data.get("channel") not in channels:
            raise ValidationError(
                f"a {data['recipient_kind']} is reached by: {', '.join(channels)}", "channel"
            )


class RuleOut(Schema):
    event = fields.String()
    kind = fields.String()
    recipient_kind = fields.String()
    channel = fields.String()
    enabled = fields.Boolean()
    updated_at = fields.AwareDateTime()


class RulesQuery(Schema):
    class Meta:
        unknown = RAISE

    event = fields.String(validate=validate.OneOf(sorted(PRODUCES)))


@blp.route("")
class Rules(MethodView):
    @require("admin", "supervisor")
    @blp.arguments(RulesQuery(), location="query", unknown=RAISE)
    @blp.response(200, RuleOut(many=True))
    @blp.alt_response(401, description="No valid bearer token.")
    @blp.alt_response(403, description="Not an admin or supervisor.")
    def get(self, args):
        """List the rules (a few dozen at most: one per event, kind, recipient, channel)."""
        query = select(models.Rule).order_by(
            models.Rule.event, models.Rule.kind, models.Rule.recipient_kind, models.Rule.channel
        )
        if args.get("event"):
            query = query.where(models.Rule.event == args["event"])
        with current_app.extensions["runtime"].reading() as session:
            return session.scalars(query).all()

    @require("admin")
    @blp.arguments(RuleIn())
    @blp.response(200, RuleOut)
    @blp.alt_response(401, description="No valid bearer token.")
    @blp.alt_response(403, description="Only an admin changes rules.")
    @blp.alt_response(422, description="A field or the combination is not allowed.")
    def put(self, body):
        """Set a rule: switch it on or off, or add it (idempotent, so no Idempotency-Key)."""
        key = (body["event"], body["kind"], body["recipient_kind"], body["channel"])
        with current_app.extensions["runtime"].sessions() as session:
            rule = session.get(models.Rule, key)
            if rule is None:
                rule = models.Rule(event=key[0], kind=key[1], recipient_kind=key[2], channel=key[3])
                session.add(rule)
            rule.enabled = body["enabled"]
            rule.updated_at = models.now()
            session.commit()
            return rule
