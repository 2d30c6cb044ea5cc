"""What routing's API accepts and returns, validated field by field.

Query strings are checked like bodies: unknown arguments are refused, values are
bounded, and the errors name the argument that is wrong.
"""

from __future__ import annotations

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates,
    validates_schema,
)
from urllib3.util import parse_url

from routing import egress
from routing.directory import UNIT_CODE
from routing.models import LEVELS, STATUSES
from servicekit import text
from servicekit.openapi import JsonBoolean
from servicekit.pages import CountedPage
from servicekit.text import FullMatch

MAX_PAGE_SIZE = 100


class PageArgs(Schema):
    class Meta:
        unknown = RAISE

    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    page_size = fields.Integer(load_default=20, validate=validate.Range(min=1, max=MAX_PAGE_SIZE))


class AssignmentQuery(PageArgs):
    status = fields.String(validate=validate.OneOf(STATUSES))
    case_number = fields.String(validate=validate.Length(min=1, max=90))


class UnitQuery(PageArgs):
    level = fields.String(validate=validate.OneOf(LEVELS))
    parent = fields.String(validate=UNIT_CODE)
    area = fields.String(validate=UNIT_CODE)
    active = fields.Boolean()


class AssignmentOut(Schema):
    assignment_id = fields.String(attribute="id")
    case_id = fields.String()
    case_number = fields.String()
    unit = fields.String()
    role = fields.String()
    status = fields.String()
    routed_at = fields.DateTime()
    due_at = fields.DateTime()
    category = fields.String()
    summary = fields.String()
    details = fields.String(allow_none=True)
    location = fields.String(allow_none=True)
    receiving_unit = fields.String()
    channel = fields.String()
    accused_unit = fields.String(allow_none=True)
    confidential = fields.Boolean()
    reason = fields.String()
    superseded_by = fields.String(allow_none=True)
    moves = fields.Integer()
    supervising_unit = fields.String(allow_none=True)
    accepted_at = fields.DateTime(allow_none=True)
    resolved_at = fields.DateTime(allow_none=True)
    answer = fields.String(allow_none=True)
    extensions = fields.Integer()
    extension_days = fields.Integer(allow_none=True)


class UnitOut(Schema):
    code = fields.String()
    name = fields.String()
    level = fields.String()
    parent = fields.String(allow_none=True)
    area = fields.String()
    leader = fields.String(allow_none=True)
    active = fields.Boolean()
    amqp = fields.Boolean(metadata={"description": "reads its cases from the queue partner.<code>"})
    revision = fields.Integer()


class PageOut(CountedPage):
    pass


class AssignmentPage(PageOut):
    items = fields.List(fields.Nested(AssignmentOut))


class UnitPage(PageOut):
    items = fields.List(fields.Nested(UnitOut))


# -- bodies ---------------------------------------------------------------------------------


class _Strict(Schema):
    class Meta:
        unknown = RAISE


def _text(max_length: int) -> list[validate.Validator]:
    # A list, not validate.And: the OpenAPI document shows a list's minLength and pattern.
    return [validate.Length(min=1, max=max_length), text.NOT_BLANK]


class ReturnIn(_Strict):
    reason = fields.String(required=True, validate=_text(500))


class TransferIn(_Strict):
    to_unit = fields.String(required=True, validate=UNIT_CODE)
    reason = fields.String(required=True, validate=_text(500))


class ProgressIn(_Strict):
    note = fields.String(required=True, validate=_text(2000))


class ResolveIn(_Strict):
    answer = fields.String(required=True, validate=_text(5000))


class ExtensionIn(_Strict):
    days = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=90))
    reason = fields.String(required=True, validate=_text(500))


class ExtensionDecisionIn(_Strict):
    grant = JsonBoolean(required=True)
    reason = fields.String(required=True, validate=_text(500))
    days = fields.Integer(strict=True, validate=validate.Range(min=1, max=90))


class CoHandlerIn(_Strict):
    unit = fields.String(required=True, validate=UNIT_CODE)
    reason = fields.String(required=True, validate=_text(500))


class ArbitrationIn(_Strict):
    unit = fields.String(required=True, validate=UNIT_CODE)
    reason = fields.String(required=True, validate=_text(500))


class ExtensionOut(Schema):
    granted = fields.Boolean()
    assignment = fields.Nested(AssignmentOut)


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


class UnitIn(_Strict):
    code = fields.String(required=True, validate=UNIT_CODE)
    name = fields.String(required=True, validate=_text(100))
    level = fields.String(required=True, validate=validate.OneOf(LEVELS))
    parent = fields.String(required=True, validate=UNIT_CODE)
    # Derived from the parents when left out; refused when it contradicts them.
    area = fields.String(validate=UNIT_CODE)
    leader = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=50))
    active = JsonBoolean(load_default=True)
    # True for a partner that consumes its own queue partner.<code> by AMQP.
    amqp = JsonBoolean(load_default=False)


class UnitPatch(_Strict):
    class Meta:
        unknown = RAISE
        json_schema = {"minProperties": 1}

    name = fields.String(validate=_text(100))
    leader = fields.String(allow_none=True, validate=validate.Length(max=50))
    active = JsonBoolean()
    amqp = JsonBoolean()

    @validates_schema
    def _something(self, data, **kwargs):
        if not data:
            raise ValidationError("name at least one of: name, leader, active, amqp", "_schema")


CATEGORY = FullMatch(
    r"^(\*|[a-z][a-z0-9_]{0,39})$", error="must be a category slug such as 'land', or '*'"
)
AREA = FullMatch(
    r"^(\*|[a-z0-9][a-z0-9-]{0,62})$", error="must be an area (a county code or 'city'), or '*'"
)


class RuleIn(_Strict):
    category = fields.String(required=True, validate=CATEGORY)
    area = fields.String(required=True, validate=AREA)
    unit = fields.String(required=True, validate=UNIT_CODE)
    due_days = fields.Integer(
        load_default=None, allow_none=True, strict=True, validate=validate.Range(min=1, max=365)
    )


class RulePatch(_Strict):
    class Meta:
        unknown = RAISE
        json_schema = {"minProperties": 1}

    unit = fields.String(validate=UNIT_CODE)
    due_days = fields.Integer(allow_none=True, strict=True, validate=validate.Range(min=1, max=365))

    @validates_schema
    def _something(self, data, **kwargs):
        if not data:
            raise ValidationError("name at least one of: unit, due_days", "_schema")


class RuleQuery(PageArgs):
    category = fields.String(validate=CATEGORY)
    area = fields.String(validate=AREA)
    unit = fields.String(validate=UNIT_CODE)


class RuleOut(Schema):
    rule_id = fields.String(attribute="id")
    category = fields.String()
    area = fields.String()
    unit = fields.String()
    due_days = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class RulePage(PageOut):
    items = fields.List(fields.Nested(RuleOut))


class InboxQuery(Schema):
    class Meta:
        unknown = RAISE

    cursor = fields.String(validate=validate.Length(min=1, max=200))
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=MAX_PAGE_SIZE))
    status = fields.String(
        load_default="assigned", validate=validate.OneOf(("assigned", "accepted"))
    )


class InboxOut(Schema):
    items = fields.List(fields.Nested(AssignmentOut))
    next_cursor = fields.String(allow_none=True)


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = (
    rf"(?:{_LABEL}\.?|(?:{_LABEL}\.)+(?:[A-Za-z]{{2,6}}|[A-Za-z0-9-]{{2,}})\.?"
    r"|[0-9]{1,3}(?:\.[0-9]{1,3}){3})"
)
# A port from 1 to 65535, leading zeros allowed (as urllib3 reads them).
_PORT = (
    r"0*(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]"
    r"|6553[0-5])"
)
WEBHOOK_URL_ERROR = (
    "must be an http or https URL such as 'https://partner.example/hook'; a port must be 1-65535"
)
# The http(s) URLs marshmallow's check takes without a TLD, ASCII host names only: as a
# pattern, the OpenAPI document can say exactly what is accepted.
WEBHOOK_URL = FullMatch(
    # Explicit classes rather than \S, which Python and JSON Schema's regex read differently.
    rf"^https?://{_HOST}(?::{_PORT})?(?:/?|[/?#][^\x00-\x20\x7f{text.SPACE}]+)$",
    error=WEBHOOK_URL_ERROR,
)


class WebhookIn(_Strict):
    url = fields.Url(
        required=True,
        schemes={"http", "https"},
        require_tld=False,
        validate=[validate.Length(max=500), WEBHOOK_URL],
        metadata={
            "description": "Where the unit's messages are POSTed: a public address, or one "
            "in the networks the operator allows (ROUTING_WEBHOOK_ALLOWED_NETWORKS)."
        },
    )

    rotate_secret = JsonBoolean(
        load_default=False,
        metadata={
            "description": "true to replace the signing secret. Registering again (the same "
            "address or a mended one) otherwise keeps it, so the partner's signature checks "
            "go on passing whoever re-registers the webhook."
        },
    )

    @validates("url")
    def _not_inside(self, url: str, **_kwargs) -> None:
        # The checks before this one leave urllib3's parser nothing to refuse; should one
        # let a URL by, what the parser raises (LocationParseError, a ValueError) is a 422.
        try:
            host = parse_url(url).host
        except ValueError:
            raise ValidationError(WEBHOOK_URL_ERROR) from None
        if not host:
            raise ValidationError(WEBHOOK_URL_ERROR)
        refused = egress.literal_refusal(host)
        if refused is not None:
            raise ValidationError(f"refused: {refused}")


class WebhookDeliveriesOut(Schema):
    waiting = fields.Integer(metadata={"description": "Messages not yet delivered, still tried."})
    failed = fields.Integer(
        metadata={
            "description": "Messages given up after every attempt; registering the webhook "
            "again gives them another round."
        }
    )
    oldest_waiting_since = fields.DateTime(
        allow_none=True, metadata={"description": "When the oldest waiting message was queued."}
    )
    last_error = fields.String(
        allow_none=True,
        metadata={
            "description": "Why the endpoint failed: the oldest waiting message's last "
            "attempt, else the last message given up."
        },
    )


class WebhookOut(Schema):
    unit = fields.String()
    url = fields.String()
    updated_at = fields.DateTime()
    deliveries = fields.Nested(WebhookDeliveriesOut)


class WebhookRegisteredOut(WebhookOut):
    # Only in the answer to PUT: the key to check the signature with, made at the first
    # registration and kept until a PUT asks for a new one (rotate_secret).
    secret = fields.String()
