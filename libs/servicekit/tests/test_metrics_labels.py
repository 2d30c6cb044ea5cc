"""The request metrics' labels are bounded: no request can add series at will.

Under gunicorn each series is a few mmapped pages of PROMETHEUS_MULTIPROC_DIR (a small
tmpfs in compose); one a request with a made-up method or path would create fills it, and
prometheus-client's write into a full folder kills the worker with SIGBUS.
"""

import random
import string

import pytest
from flask.views import MethodView
from flask_smorest import Blueprint
from prometheus_client.parser import text_string_to_metric_families

from servicekit.db import service_metadata
from servicekit.web import create_service_app

SERVICE = "labelled"
# The methods HTTP defines (RFC 9110) and PATCH: any other is counted as "other".
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}


@pytest.fixture
def app(tmp_path):
    blp = Blueprint("things", __name__, url_prefix="/v1")

    @blp.route("/things/<name>")
    class Thing(MethodView):
        @blp.response(200)
        def get(self, name):
            return {"name": name}

    return create_service_app(
        SERVICE,
        title="labelled",
        description="a test service",
        metadata=service_metadata(),
        config={"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path}/labelled.db"},
        register=lambda app, api: api.register_blueprint(blp),
    )


def _series(client, name: str) -> list[dict]:
    body = client.get("/metrics").get_data(as_text=True)
    return [
        sample.labels
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == name and sample.labels.get("service") == SERVICE
    ]


def _word(rng: random.Random, letters: str, size: int) -> str:
    return "".join(rng.choices(letters, k=size))


def test_made_up_methods_and_paths_add_no_series(app):
    client = app.test_client()
    rng = random.Random(20261123)
    for _ in range(150):
        method = _word(rng, string.ascii_uppercase, 12)
        path = "/" + _word(rng, string.ascii_lowercase + "/", 16)
        assert client.open("/healthz", method=method).status_code == 405
        assert client.open("/v1/things/x", method=method).status_code == 405
        assert client.open(path, method=method).status_code in (404, 405)
        assert client.get(path).status_code in (404, 405)
        assert client.get("/v1/things/" + _word(rng, string.ascii_lowercase, 8)).status_code == 200

    rules = {rule.rule for rule in app.url_map.iter_rules()}
    for name in ("http_requests_total", "http_request_duration_seconds_count"):
        series = _series(client, name)
        assert series, name
        for labels in series:
            assert labels["method"] in METHODS | {"other"}, labels
            assert labels["endpoint"] in rules | {"unmatched"}, labels
    # /healthz, /v1/things/<name> and unmatched, by GET or another method, by status:
    # a handful of series whatever the 750 requests were.
    assert len(_series(client, "http_requests_total")) <= 8


def test_a_known_method_keeps_its_name(app):
    client = app.test_client()
    client.get("/healthz")
    client.delete("/healthz")
    methods = {labels["method"] for labels in _series(client, "http_requests_total")}
    assert {"GET", "DELETE"} <= methods
