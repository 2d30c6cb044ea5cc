"""``/v1/units``: the unit directory (联动单位): read by anyone signed in, changed by admins.

Every change publishes ``unit.changed`` with the unit's new revision.
"""

from __future__ import annotations

import datetime as dt
import logging

from flask import current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import RAISE
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from routing import admin, directory, idempotency, models, rules, usecases, webhooks
from routing.assignments import fail
from routing.pages import paginate
from routing.schemas import (
    IdempotencyHeader,
    UnitIn,
    UnitOut,
    UnitPage,
    UnitPatch,
    UnitQuery,
    WebhookIn,
    WebhookOut,
    WebhookRegisteredOut,
)
from servicekit.auth import current_principal, require

log = logging.getLogger(__name__)

blp = Blueprint(
    "units",
    __name__,
    url_prefix="/v1/units",
    description="The unit directory: city → county/district → township.",
)

FILTERS = ("level", "parent", "area", "active")


def declare_queue(code: str) -> None:
    """Declare a new or reactivated unit's partner queue, so its cases can be delivered.

    Best effort: the consumer declares every active unit's queue when it starts, and
    a partner copy stays in the outbox until a queue takes it.
    """
    from eventbus.connection import connect
    from routing.partners import declare_partner_queues

    try:
        conn = connect(current_app.config.get("AMQP_URL"))
    except Exception:  # noqa: BLE001 - the broker may be down; the consumer declares later
        log.warning("partner queue not declared now", extra={"unit": code})
        return
    try:
        declare_partner_queues(conn.channel(), [code])
    finally:
        conn.close()


@blp.route("")
class Units(MethodView):
    @require()
    @blp.arguments(UnitQuery(), location="query", unknown=RAISE)
    @blp.response(200, UnitPage)
    @blp.alt_response(401, description="No valid bearer token.")
    def get(self, args):
        """List units by code, optionally of one level, parent or area, or by activity."""
        query = select(models.Unit).order_by(models.Unit.code)
        for name in FILTERS:
            if name in args:
                query = query.where(getattr(models.Unit, name) == args[name])
        with current_app.extensions["runtime"].reading() as session:
            return paginate(session, query, page=args["page"], page_size=args["page_size"])

    @require("admin")
    @blp.arguments(IdempotencyHeader(), location="headers")
    @blp.arguments(UnitIn())
    @blp.response(201, UnitOut)
    @blp.alt_response(403, description="Not an admin.")
    @blp.alt_response(
        409, description="The code is taken, or an active unit under an inactive parent."
    )
    @blp.alt_response(422, description="Bad fields, an unknown parent, a level or area mismatch.")
    def post(self, headers, data):
        """Add a unit to the directory (publishes ``unit.changed``).

        Send an ``Idempotency-Key`` header: a retry with the same key returns the
        first answer and adds nothing.
        """
        principal = current_principal()
        try:
            body = idempotency.create_once(
                current_app.extensions["runtime"].unit_of_work(),
                unit=principal.unit,
                key=headers.get("idempotency_key"),
                payload=request.get_json(silent=True),
                create=lambda uow: UnitOut().dump(admin.add_unit(uow, data)),
            )
        except usecases.ActionError as exc:
            fail(exc)
        except idempotency.IdempotencyConflict:
            abort(
                422,
                message="this Idempotency-Key was already used for a different request",
                errors={"headers": {"Idempotency-Key": ["already used for a different request"]}},
            )
        if body["active"] and body["amqp"]:
            declare_queue(body["code"])
        return body


@blp.route("/<code>")
class UnitByCode(MethodView):
    @require()
    @blp.response(200, UnitOut)
    @blp.alt_response(404, description="No such unit.")
    def get(self, code: str):
        """Read one unit by its code, e.g. ``lw-buwen``."""
        _ensure_unit_code(code)
        with current_app.extensions["runtime"].reading() as session:
            unit = session.get(models.Unit, code)
            if unit is None:
                abort(404, message="no such unit")
            return unit

    @require("admin")
    @blp.arguments(UnitPatch())
    @blp.response(200, UnitOut)
    @blp.alt_response(403, description="Not an admin.")
    @blp.alt_response(404, description="No such unit.")
    @blp.alt_response(
        409,
        description=(
            "Retiring the default unit, a unit that rules name or a unit with active units "
            "under it; reactivating a unit under an inactive one."
        ),
    )
    def patch(self, data, code: str):
        """Rename, change the leader of, retire (``active: false``) or reactivate a unit."""
        _ensure_unit_code(code)
        try:
            with current_app.extensions["runtime"].unit_of_work() as uow:
                body = UnitOut().dump(
                    admin.change_unit(uow, code, data, default_unit=rules.default_unit())
                )
                uow.commit()
        except usecases.ActionError as exc:
            fail(exc)
        if body["active"] and body["amqp"] and (data.get("active") or data.get("amqp")):
            declare_queue(code)
        return body


def _ensure_unit_code(code: str) -> None:
    """Answer 404 for a path that cannot name a unit, before the database is asked.

    PostgreSQL refuses a NUL in a string outright (a 500), and no such code can exist.
    """
    if not directory.is_unit_code(code):
        abort(404, message="no such unit")


def _ensure_own_or_admin(code: str) -> None:
    principal = current_principal()
    if principal.has("admin") or (principal.has("partner") and principal.unit == code):
        return
    abort(403, message="only an admin or the unit's own partner manages its webhook")


def _register_webhook(runtime, code: str, data: dict) -> dict:
    """Register (or re-register) the unit's webhook in one transaction; return the answer."""
    with runtime.sessions() as session:
        unit = session.get(models.Unit, code)
        if unit is None or not unit.active:
            abort(404, message="no such active unit")
        hook = session.get(models.Webhook, code) or models.Webhook(unit=code)
        if hook.secret is None or data["rotate_secret"]:
            hook.secret = webhooks.new_secret()
        hook.url = data["url"]
        hook.updated_at = dt.datetime.now(dt.UTC)
        session.add(hook)
        webhooks.retry_given_up(session, code, hook.updated_at)
        session.commit()
        return {
            "unit": code,
            "url": hook.url,
            "updated_at": hook.updated_at,
            "secret": hook.secret,
            "deliveries": webhooks.deliveries(session, code),
        }


@blp.route("/<code>/webhook")
class UnitWebhook(MethodView):
    @require("admin", "partner")
    @blp.arguments(WebhookIn())
    @blp.response(200, WebhookRegisteredOut)
    @blp.alt_response(403, description="Neither an admin nor the unit's partner.")
    @blp.alt_response(404, description="No such active unit.")
    def put(self, data, code: str):
        """Register (or change the address of) the unit's webhook; the answer carries its secret.

        The signing secret is made when the webhook is first registered and kept when it
        is registered again, at the same address or a mended one: the partner's checks
        go on passing whoever re-registers it. ``"rotate_secret": true`` replaces it; every
        message sent from then on, those waiting for another attempt included, is signed
        with the new one. Messages given up at the address before are tried again, at this
        one: a partner registers its mended endpoint and receives what it missed.
        """
        _ensure_unit_code(code)
        _ensure_own_or_admin(code)
        runtime = current_app.extensions["runtime"]
        try:
            return _register_webhook(runtime, code, data)
        except IntegrityError:
            # Another first registration of this unit's webhook (the partner's retry while
            # its first PUT was at work) committed the row in between: register again over
            # it, keeping the secret it made.
            return _register_webhook(runtime, code, data)

    @require("admin", "partner")
    @blp.response(200, WebhookOut)
    @blp.alt_response(404, description="The unit has no webhook.")
    def get(self, code: str):
        """Read the unit's webhook (never its secret) and how its deliveries stand."""
        _ensure_unit_code(code)
        _ensure_own_or_admin(code)
        with current_app.extensions["runtime"].reading() as session:
            hook = session.get(models.Webhook, code)
            if hook is None:
                abort(404, message="no webhook for this unit")
            return {
                "unit": hook.unit,
                "url": hook.url,
                "updated_at": hook.updated_at,
                "deliveries": webhooks.deliveries(session, code),
            }

    @require("admin", "partner")
    @blp.response(204)
    @blp.alt_response(404, description="No such unit.")
    def delete(self, code: str):
        """Remove the unit's webhook; messages not yet delivered are dropped from it.

        Idempotent: a unit without a webhook answers 204 too (a partner retrying a removal
        whose answer it lost is told what holds: there is none).
        """
        _ensure_unit_code(code)
        _ensure_own_or_admin(code)
        with current_app.extensions["runtime"].sessions() as session:
            if session.get(models.Unit, code) is None:
                abort(404, message="no such unit")
            hook = session.get(models.Webhook, code)
            if hook is not None:
                session.delete(hook)
                # Dropped now, not when next tried: a webhook registered later gets only
                # the messages of its own time, not those of the one removed.
                webhooks.drop_undelivered(session, code)
                session.commit()
