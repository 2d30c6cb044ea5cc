"""``/v1/rules``: (category, area) → responsible unit, managed by admins.

The most specific rule wins: (category, area), then (category, ``*``), then
(``*``, area), then (``*``, ``*``), then the default unit. A case's area is that of
the unit that received it.
"""

from __future__ import annotations

import uuid

from flask import current_app, jsonify, make_response, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import RAISE
from sqlalchemy import select

from routing import admin, idempotency, models, usecases
from routing.assignments import fail
from routing.pages import paginate
from routing.schemas import IdempotencyHeader, RuleIn, RuleOut, RulePage, RulePatch, RuleQuery
from servicekit.auth import current_principal, require

blp = Blueprint(
    "rules",
    __name__,
    url_prefix="/v1/rules",
    description="Routing rules: (category, area) → unit; the most specific wins.",
)


def _check_id(rule_id: str) -> None:
    try:
        uuid.UUID(rule_id)
    except ValueError:
        abort(404, message="no such rule")


@blp.route("")
class Rules(MethodView):
    @require("admin", "supervisor")
    @blp.arguments(RuleQuery(), location="query", unknown=RAISE)
    @blp.response(200, RulePage)
    def get(self, args):
        """List rules, optionally of one category, area or unit."""
        query = select(models.Rule).order_by(models.Rule.category, models.Rule.area)
        for name in ("category", "area", "unit"):
            if name in args:
                query = query.where(getattr(models.Rule, name) == args[name])
        with current_app.extensions["runtime"].reading() as session:
            return paginate(session, query, page=args["page"], page_size=args["page_size"])

    @require("admin")
    @blp.arguments(IdempotencyHeader(), location="headers")
    @blp.arguments(RuleIn())
    @blp.response(201, RuleOut)
    @blp.alt_response(409, description="A rule for this (category, area) exists.")
    @blp.alt_response(422, description="Bad fields; an unknown or inactive unit; an unknown area.")
    def post(self, headers, data):
        """Add a rule; ``*`` stands for any category or any area.

        Send an ``Idempotency-Key`` header: a retry with the same key returns the
        first answer and adds nothing.
        """
        try:
            body = idempotency.create_once(
                current_app.extensions["runtime"].unit_of_work(),
                unit=current_principal().unit,
                key=headers.get("idempotency_key"),
                payload=request.get_json(silent=True),
                create=lambda uow: RuleOut().dump(admin.add_rule(uow, data)),
            )
        except usecases.ActionError as exc:
            fail(exc)
        except idempotency.IdempotencyConflict:
            abort(
                422,
                message="this Idempotency-Key was already used for a different request",
                errors={"headers": {"Idempotency-Key": ["already used for a different request"]}},
            )
        # Already dumped (and maybe replayed from the first answer): sent as it is.
        return make_response(jsonify(body), 201)


@blp.route("/<rule_id>")
class RuleById(MethodView):
    @require("admin", "supervisor")
    @blp.response(200, RuleOut)
    @blp.alt_response(404, description="No such rule.")
    def get(self, rule_id: str):
        """Read one rule."""
        _check_id(rule_id)
        with current_app.extensions["runtime"].reading() as session:
            rule = session.get(models.Rule, rule_id)
            if rule is None:
                abort(404, message="no such rule")
            return rule

    @require("admin")
    @blp.arguments(RulePatch())
    @blp.response(200, RuleOut)
    @blp.alt_response(404, description="No such rule.")
    @blp.alt_response(422, description="Bad fields; an unknown or inactive unit.")
    def patch(self, data, rule_id: str):
        """Point a rule at another unit or change its deadline (``due_days``)."""
        _check_id(rule_id)
        try:
            with current_app.extensions["runtime"].unit_of_work() as uow:
                rule = admin.change_rule(uow, rule_id, data)
                uow.session.flush()
                uow.session.expunge(rule)
                uow.commit()
        except usecases.ActionError as exc:
            fail(exc)
        return rule

    @require("admin")
    @blp.response(204)
    @blp.alt_response(404, description="No such rule.")
    def delete(self, rule_id: str):
        """Delete a rule: its cases fall to the next most specific rule, or the default."""
        _check_id(rule_id)
        try:
            with current_app.extensions["runtime"].unit_of_work() as uow:
                admin.remove_rule(uow, rule_id)
                uow.commit()
        except usecases.ActionError as exc:
            fail(exc)
