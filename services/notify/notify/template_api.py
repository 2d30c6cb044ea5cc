"""``/v1/templates``: read and edit message templates, checked before they are saved."""

from __future__ import annotations

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import RAISE, Schema, fields, validate
from sqlalchemy import select

from notify import models, templates
from servicekit.auth import current_principal, require

blp = Blueprint(
    "templates",
    __name__,
    url_prefix="/v1/templates",
    description="Message templates (Jinja2, sandboxed) by kind, channel and language.",
)


class TemplateIn(Schema):
    """A template's new text. ``subject`` is used by e-mail only."""

    class Meta:
        unknown = RAISE

    subject = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))
    body = fields.String(required=True, validate=validate.Length(min=1, max=20_000))


class TemplatesQuery(Schema):
    """``GET /v1/templates`` arguments: optional filters."""

    class Meta:
        unknown = RAISE

    kind = fields.String(validate=validate.OneOf(models.KINDS))
    channel = fields.String(validate=validate.OneOf(models.CHANNELS))
    language = fields.String(validate=validate.OneOf(models.LANGUAGES))


class TemplateOut(Schema):
    kind = fields.String()
    channel = fields.String()
    language = fields.String()
    subject = fields.String(allow_none=True)
    body = fields.String()
    fields_ = fields.List(
        fields.String(),
        data_key="fields",
        metadata={"description": "The fields this kind's templates may use."},
    )
    edited = fields.Boolean(metadata={"description": "False while the built-in default applies."})
    updated_at = fields.AwareDateTime(allow_none=True)


def _check_key(kind: str, channel: str, language: str) -> None:
    errors = {}
    if kind not in models.KINDS:
        errors["kind"] = [f"must be one of: {', '.join(models.KINDS)}"]
    if channel not in models.CHANNELS:
        errors["channel"] = [f"must be one of: {', '.join(models.CHANNELS)}"]
    if language not in models.LANGUAGES:
        errors["language"] = [f"must be one of: {', '.join(models.LANGUAGES)}"]
    if errors:
        abort(404, message="no such template", errors={"path": errors})


def _view(session, kind: str, channel: str, language: str) -> dict:
    stored = session.get(models.Template, (kind, channel, language))
    source = templates.source(session, kind, channel, language)
    return {
        "kind": kind,
        "channel": channel,
        "language": language,
        "subject": source.subject,
        "body": source.body,
        "fields_": sorted(templates.FIELDS[kind]),
        "edited": stored is not None,
        "updated_at": stored.updated_at if stored else None,
    }


@blp.route("")
class Templates(MethodView):
    @require("admin")
    @blp.arguments(TemplatesQuery(), location="query", unknown=RAISE)
    @blp.response(200, TemplateOut(many=True))
    @blp.alt_response(401, description="No valid bearer token.")
    @blp.alt_response(403, description="Only an admin reads templates.")
    @blp.alt_response(422, description="Bad query arguments, field by field.")
    def get(self, args):
        """List the templates in force (defaults and edits), optionally filtered."""
        with current_app.extensions["runtime"].reading() as session:
            session.scalars(select(models.Template)).all()  # one query warms the identity map
            return [
                _view(session, kind, channel, language)
                for kind in models.KINDS
                if args.get("kind", kind) == kind
                for channel in models.CHANNELS
                if args.get("channel", channel) == channel
                for language in models.LANGUAGES
                if args.get("language", language) == language
            ]


@blp.route("/<kind>/<channel>/<language>")
class TemplateByKey(MethodView):
    @require("admin")
    @blp.response(200, TemplateOut)
    @blp.alt_response(404, description="No such kind, channel or language.")
    def get(self, kind: str, channel: str, language: str):
        """Read the template in force for a kind, channel and language.

        Every kind, channel and language has one: the city's edit, or the built-in default
        (``edited: false``) where there is none or after a ``DELETE``.
        """
        _check_key(kind, channel, language)
        with current_app.extensions["runtime"].reading() as session:
            return _view(session, kind, channel, language)

    @require("admin")
    @blp.arguments(TemplateIn())
    @blp.response(200, TemplateOut)
    @blp.alt_response(404, description="No such kind, channel or language.")
    @blp.alt_response(
        422,
        description="Does not parse, uses a field the kind lacks or a construct a template "
        "may not (a loop, a call, another template …), or fails on sample values.",
    )
    def put(self, body, kind: str, channel: str, language: str):
        """Replace a template after checking it parses and uses only the kind's fields."""
        _check_key(kind, channel, language)
        source = templates.Source(body["subject"], body["body"])
        try:
            templates.validate(kind, channel, source)
        except templates.InvalidTemplate as exc:
            abort(422, message="invalid template", errors={"json": exc.messages})
        with current_app.extensions["runtime"].sessions() as session:
            stored = session.get(models.Template, (kind, channel, language))
            if stored is None:
                stored = models.Template(kind=kind, channel=channel, language=language)
                session.add(stored)
            stored.subject = source.subject
            stored.body = source.body
            stored.updated_at = models.now()
            stored.updated_by = current_principal().sub[:100]
            session.commit()
            return _view(session, kind, channel, language)

    @require("admin")
    @blp.response(200, TemplateOut)
    @blp.alt_response(404, description="No such kind, channel or language.")
    def delete(self, kind: str, channel: str, language: str):
        """Drop an edit: the built-in default applies again."""
        _check_key(kind, channel, language)
        with current_app.extensions["runtime"].sessions() as session:
            stored = session.get(models.Template, (kind, channel, language))
            if stored is not None:
                session.delete(stored)
                session.commit()
            return _view(session, kind, channel, language)
