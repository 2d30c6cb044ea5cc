"""The service frame's API document and errors: whole-object rules, strict booleans, Allow."""

import re

import pytest
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, fields, validate

from servicekit import text, web
from servicekit.db import service_metadata
from servicekit.openapi import JsonBoolean
from servicekit.web import create_service_app


class PatchIn(Schema):
    class Meta:
        unknown = RAISE
        json_schema = {"minProperties": 1}

    name = fields.String()
    code = fields.String(validate=validate.Regexp(r"^[a-z]+$"))
    active = JsonBoolean()


@pytest.fixture
def app(tmp_path):
    blp = Blueprint("things", __name__, url_prefix="/v1")

    @blp.route("/things/<name>")
    class Thing(MethodView):
        @blp.arguments(PatchIn)
        @blp.response(200, PatchIn)
        def patch(self, data, name):
            return data

    return create_service_app(
        "things",
        title="things",
        description="a test service",
        metadata=service_metadata(),
        config={"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path}/things.db"},
        register=lambda app, api: api.register_blueprint(blp),
    )


def test_a_schema_states_its_whole_object_rule_in_the_document(app):
    spec = app.test_client().get("/openapi.json").get_json()
    patch_in = spec["components"]["schemas"]["PatchIn"]
    assert patch_in["minProperties"] == 1
    assert patch_in["properties"]["active"]["type"] == "boolean"


@pytest.mark.parametrize("value", [1, 0, "true", "yes"])
def test_a_json_boolean_takes_true_and_false_only(app, value):
    client = app.test_client()
    refused = client.patch("/v1/things/a", json={"active": value})
    assert refused.status_code == 422
    assert "active" in refused.get_json()["errors"]["json"]
    assert client.patch("/v1/things/a", json={"active": False}).get_json() == {"active": False}


def test_a_method_not_allowed_says_which_are(app):
    response = app.test_client().open("/v1/things/a", method="TRACE")
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"PATCH", "OPTIONS"}
    assert response.get_json()["code"] == 405


@pytest.mark.parametrize(
    ("path", "body", "where"),
    [
        ("/v1/things/a", {"name": "a\u0000b"}, {"json": {"name": [web.UNSTORABLE_TEXT]}}),
        ("/v1/things/a", {"name": "\udb6cx"}, {"json": {"name": [web.UNSTORABLE_TEXT]}}),
        ("/v1/things/a?note=%00", {"name": "a"}, {"query": {"note": [web.UNSTORABLE_TEXT]}}),
    ],
)
def test_text_no_field_can_store_is_refused_naming_where(app, path, body, where):
    # Found by the bad-input proof at full size: a NUL reached PostgreSQL and came back a 500.
    response = app.test_client().patch(path, json=body)
    assert response.status_code == 422
    assert response.get_json()["errors"] == where
    assert app.test_client().patch("/v1/things/a", json={"name": "a b"}).status_code == 200


def test_a_free_string_documents_the_guards_rule(app):
    # Without it schemathesis sent a NUL as valid data and took the 422 for a refusal of
    # good input; a field with a pattern of its own keeps it.
    document = app.test_client().get("/openapi.json").get_json()
    properties = document["components"]["schemas"]["PatchIn"]["properties"]
    assert properties["name"]["pattern"] == text.STORABLE_PATTERN
    assert properties["code"]["pattern"] == "^[a-z]+$"
    assert "pattern" not in properties["active"]
    assert re.search(text.STORABLE_PATTERN, "蓝田 \t") and not re.search(
        text.STORABLE_PATTERN, "a\x00"
    )
