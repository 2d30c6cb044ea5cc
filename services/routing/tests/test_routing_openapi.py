"""Routing's API document states what its bodies accept (found by the bad-input proof)."""

from __future__ import annotations

import re

import pytest
from marshmallow import ValidationError

from routing.schemas import WebhookIn
from servicekit import text
from servicekit.auth import mint

ADMIN = {"Authorization": f"Bearer {mint('city-org', ['admin'])}"}


@pytest.fixture
def schemas(app):
    return app.test_client().get("/openapi.json").get_json()["components"]["schemas"]


def test_free_text_is_documented_as_not_blank(schemas):
    # A blank reason was refused, yet the document allowed "" (validate.And hid the rule).
    for name, field in [("ReturnIn", "reason"), ("UnitIn", "name"), ("ResolveIn", "answer")]:
        prop = schemas[name]["properties"][field]
        assert prop["minLength"] == 1 and prop["pattern"] == text.NOT_BLANK_PATTERN, (name, prop)


def test_a_patch_must_change_something_and_says_so(schemas):
    assert schemas["UnitPatch"]["minProperties"] == 1
    assert schemas["RulePatch"]["minProperties"] == 1


@pytest.mark.parametrize(
    "url, accepted",
    [
        ("https://partner.example/hook", True),
        ("http://127.0.0.1:8080/x", True),
        ("http://localhost", True),
        ("", False),
        ("ftp://partner.example", False),
        ("https://a.b", False),
        ("https://partner.example/a\x1cb", False),
        ("https://partner.example/a\x00b", False),
        ("https://partner.example:65535/hook", True),
        ("https://partner.example:1/hook", True),
        ("https://partner.example:08443/hook", True),
        ("https://partner.example:99999/hook", False),
        ("https://partner.example:65536/hook", False),
        ("https://partner.example:0/hook", False),
        ("https://partner.example:000/hook", False),
    ],
)
def test_the_webhook_url_pattern_is_what_is_accepted(app, schemas, url, accepted):
    pattern = schemas["WebhookIn"]["properties"]["url"]["pattern"]
    assert bool(re.search(pattern, url)) is accepted
    response = app.test_client().put(
        "/v1/units/lw-guokeng/webhook", headers=ADMIN, json={"url": url}
    )
    assert response.status_code == (200 if accepted else 422), response.get_json()


@pytest.mark.parametrize(
    "url",
    [
        "https://partner.example:99999/hook",
        "https://partner.example:123456789012345678/hook",
        "http://10.20.30.40:70000/",
        "https://partner.example:0/hook",
        "https://partner.example:/hook",
        "http://[::1/",
        "http://[::1]:99999/",
        "http://[fe80::1%25eth0]/",
        "https://bücher.example/hook",
        "https://xn--bcher-kva.example:99999/hook",
        "http:///hook",
        "http://:80/",
        "http://",
        "http://exa mple.example:1/",
    ],
)
def test_a_webhook_url_the_parser_refuses_is_a_422_naming_url(app, url):
    # A port over 65535 passed the URL checks, then urllib3's parse_url raised
    # LocationParseError inside the validator: a 500.
    response = app.test_client().put(
        "/v1/units/lw-guokeng/webhook", headers=ADMIN, json={"url": url}
    )
    assert response.status_code == 422, response.get_json()
    assert list(response.get_json()["errors"]["json"]) == ["url"]


@pytest.mark.parametrize(
    "url",
    ["http://[::1/", "https://a.example:99999/", "http://exa mple:1/", "http:///x", "http://"],
)
def test_the_webhook_validator_refuses_what_it_cannot_parse(url):
    # The last check parses the URL again: whatever its parser raises, or a URL without
    # a host, is a validation error there too, should the checks before it let one by.
    with pytest.raises(ValidationError):
        WebhookIn()._not_inside(url)


@pytest.mark.parametrize("value", [0, 1, "true"])
def test_booleans_in_bodies_are_json_booleans(app, value):
    # {"amqp": 0} was taken as false although the document says boolean.
    response = app.test_client().patch("/v1/units/lw-buwen", headers=ADMIN, json={"amqp": value})
    assert response.status_code == 422
    assert "amqp" in response.get_json()["errors"]["json"]


@pytest.mark.parametrize(
    "name, status",
    [("蓝田 \t", 200), (" \t", 422), ("\x1d蓝田", 422), ("\x0b\x0c\t\n\r\x1d", 422), ("\x85", 422)],
)
def test_a_name_is_what_the_documents_pattern_says(app, schemas, name, status):
    # "\x1d蓝田" satisfied the document's pattern (^\s*\S searched, and \x1d is no space to
    # JSON Schema's regex) and failed marshmallow's (to Python's re it is): both now read
    # one pattern of explicit classes, which refuses control characters.
    pattern = schemas["UnitPatch"]["properties"]["name"]["pattern"]
    assert bool(re.search(pattern, name)) is (status == 200)
    response = app.test_client().patch("/v1/units/lw-buwen", headers=ADMIN, json={"name": name})
    assert response.status_code == status, response.get_json()
