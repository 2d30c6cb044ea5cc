"""What the OpenAPI documents say beyond marshmallow's fields: whole-object constraints.

apispec turns each field's validators into JSON Schema, but a rule on the object as a
whole (``@validates_schema``) stays invisible to clients and to schemathesis. A schema
states the part of such a rule that JSON Schema can express in ``Meta.json_schema``
(for instance ``{"minProperties": 1}`` for a PATCH that must change something), and
this plugin copies it into the schema's component.
"""

from __future__ import annotations

from apispec import BasePlugin
from flask_smorest import Api
from marshmallow import class_registry, fields


class SchemaExtras(BasePlugin):
    """Merge ``Meta.json_schema`` of a marshmallow schema into its OpenAPI component."""

    def schema_helper(self, name, definition, **kwargs):
        schema = kwargs.get("schema")
        if isinstance(schema, str):
            schema = class_registry.get_class(schema)
        return dict(getattr(getattr(schema, "Meta", None), "json_schema", None) or {}) or None


def init_api(api: Api) -> None:
    """Have the API's document include every schema's ``Meta.json_schema``."""
    plugin = SchemaExtras()
    plugin.init_spec(api.spec)
    # Components share this list: a plugin appended now runs after the marshmallow one.
    api.spec.plugins.append(plugin)


class JsonBoolean(fields.Boolean):
    """A JSON ``true`` or ``false``, as the document says: not 1, 0, "yes" or "true".

    marshmallow's Boolean takes those too, which suits query strings but lets a body
    that breaks its documented type through.
    """

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value
