"""What routing's API accepts and returns, validated field by field.

Query strings are checked like bodies: unknown arguments are refused, values are
bounded, and the errors name the argument that is wrong.
"""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from routing.directory import UNIT_CODE
from routing.models import LEVELS, STATUSES

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


class UnitOut(Schema):
    code = fields.String()
    name = fields.String()
    level = fields.String()
    parent = fields.String(allow_none=True)
    area = fields.String()
    leader = fields.String(allow_none=True)
    active = fields.Boolean()


class PageOut(Schema):
    page = fields.Integer()
    page_size = fields.Integer()
    total = fields.Integer()


class AssignmentPage(PageOut):
    items = fields.List(fields.Nested(AssignmentOut))


class UnitPage(PageOut):
    items = fields.List(fields.Nested(UnitOut))
