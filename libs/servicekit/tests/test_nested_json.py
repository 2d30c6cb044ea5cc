"""A JSON body nested too deep is refused with 400 in the error shape, never a 500.

Python's json parser raises RecursionError (not ValueError) on a few kilobytes of
``[[[...]]]``, which ``get_json(silent=True)`` does not silence: every service answered 500
with a traceback, before authentication, on any path.
"""

import pytest
from flask import jsonify
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from servicekit import web
from servicekit.db import service_metadata
from servicekit.web import create_service_app


class ThingIn(Schema):
    name = fields.String()
    tags = fields.Raw()


@pytest.fixture
def app(tmp_path):
    blp = Blueprint("things", __name__, url_prefix="/v1")

    @blp.route("/things")
    class Things(MethodView):
        @blp.arguments(ThingIn)
        @blp.response(201, ThingIn)
        def post(self, data):
            return data

    def register(app, api):
        api.register_blueprint(blp)

        @app.post("/face/things")
        def face_things():
            return jsonify(ok=True)

        web.add_error_face(
            app,
            "/face/",
            lambda code, message, errors: (jsonify([{"code": code, "description": message}]), code),
        )

    return create_service_app(
        "nested",
        title="nested",
        description="a test service",
        metadata=service_metadata(),
        config={"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path}/nested.db"},
        register=register,
    )


def nested(depth: int, inner: str = "") -> str:
    return "[" * depth + inner + "]" * depth


def post(client, path, body):
    return client.post(path, data=body, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("depth", [2_000, 100_000])
@pytest.mark.parametrize("path", ["/v1/things", "/v1/nowhere", "/healthz"])
def test_deeply_nested_json_is_a_400_in_the_error_shape(app, path, depth):
    answer = post(app.test_client(), path, nested(depth))
    assert answer.status_code == 400, answer.data[:200]
    body = answer.get_json()
    assert body["code"] == 400 and body["status"] == "Bad Request"
    assert "nested" in body["message"]


def test_an_object_nested_in_a_value_counts_too(app):
    body = '{"name": "a", "tags": ' + '{"a": ' * 3_000 + "1" + "}" * 3_000 + "}"
    answer = post(app.test_client(), "/v1/things", body)
    assert answer.status_code == 400
    assert "nested" in answer.get_json()["message"]


def test_a_face_with_its_own_error_shape_answers_in_it(app):
    answer = post(app.test_client(), "/face/things", nested(5_000))
    assert answer.status_code == 400
    assert answer.get_json()[0]["code"] == 400


def test_nesting_up_to_the_limit_is_left_to_the_view(app):
    client = app.test_client()
    inside = nested(web.MAX_JSON_DEPTH - 1, "1")
    answer = post(client, "/v1/things", '{"tags": ' + inside + "}")
    assert answer.status_code == 201
    refused = post(client, "/v1/things", '{"tags": ' + nested(web.MAX_JSON_DEPTH, "1") + "}")
    assert refused.status_code == 400
