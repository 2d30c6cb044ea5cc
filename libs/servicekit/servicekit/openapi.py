"""What the OpenAPI documents say beyond marshmallow's fields.

apispec turns each field's validators into JSON Schema, but two rules stay invisible to
clients and to schemathesis without help:

- a rule on the object as a whole (``@validates_schema``): a schema states the part of it
  that JSON Schema can express in ``Meta.json_schema`` (for instance
  ``{"minProperties": 1}`` for a PATCH that must change something), and a plugin copies
  it into the schema's component;
- the request guard's rule that no text holds a NUL or a lone surrogate
  (:mod:`servicekit.text`): every string without a pattern of its own says so in one.
"""

from __future__ import annotations

from apispec import BasePlugin
from flask_smorest import Api
from marshmallow import class_registry, fields

from servicekit import text


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
    api.ma_plugin.converter.add_attribute_function(storable_text)


def storable_text(self, field, ret, **kwargs) -> dict:
    """Give a free string the pattern of the text the request guard lets through."""
    # A pattern, a format or an enum of the field's own already says more (and a pattern
    # of servicekit.text refuses what this one does); JSON Schema has one pattern a schema.
    types = ret.get("type")
    is_string = types == "string" or (isinstance(types, list) and "string" in types)
    if is_string and not {"pattern", "format", "enum"} & ret.keys():
        return {"pattern": text.STORABLE_PATTERN}
    return {}


class JsonBoolean(fields.Boolean):
    """A JSON ``true`` or ``false``, as the document says: not 1, 0, "yes" or "true".

    marshmallow's Boolean takes those too, which suits query strings but lets a body
    that breaks its documented type through.
    """

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value
