"""The OpenAPI document describes every endpoint, its schemas and its error responses."""

from __future__ import annotations

import re

import pytest

UNDOCUMENTED = {"static", "openapi_json", "openapi_swagger_ui", "api-docs.openapi_json"}


@pytest.fixture
def spec(client):
    return client.get("/openapi.json").get_json()


def operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                yield path, method, operation


def test_every_route_of_the_api_is_in_the_document(app, spec):
    documented = {
        (re.sub(r"\{(\w+)\}", r"<\1>", path), method.upper())
        for path, method, _ in operations(spec)
    }
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(("/v1/", "/open311/")):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"<\1>", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method) in documented, (path, method)


def test_every_operation_documents_its_4xx_responses_with_a_schema(app, spec):
    roles = {}
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        view_class = getattr(view, "view_class", None)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            handler = getattr(view_class, method.lower(), None)
            roles[(re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method.lower())] = getattr(
                handler, "_nighttalk_roles", None
            )
    for path, method, operation in operations(spec):
        responses = operation["responses"]
        where = f"{method.upper()} {path}"
        errors = [code for code in responses if code.startswith("4")]
        assert errors, f"{where} documents no 4xx response"
        for code in errors:
            response = responses[code]
            if "$ref" not in response:
                assert response.get("description"), f"{where} {code} has no description"
                assert response.get("content"), f"{where} {code} has no schema"
        open311 = path.startswith("/open311/")
        secured = operation.get("security", spec.get("security")) != []
        if secured:
            assert "401" in responses, f"{where} needs a token but documents no 401"
        if roles.get((path, method)):
            assert "403" in responses, f"{where} needs a role but documents no 403"
        if "{" in path:
            assert "404" in responses, f"{where} has a path parameter but documents no 404"
        takes_input = operation.get("parameters") or operation.get("requestBody")
        if takes_input:
            expected = "400" if open311 else "422"
            assert expected in responses, f"{where} takes input but documents no {expected}"
        if open311:
            assert "422" not in responses, f"{where}: Open311 answers bad input with 400"
        if "requestBody" in operation and not open311:
            assert {"400", "413", "415"} <= set(responses), f"{where}: body errors undocumented"


def test_every_success_response_has_a_schema(spec):
    for path, method, operation in operations(spec):
        for code, response in operation["responses"].items():
            if code.startswith("2"):
                assert response.get("content"), f"{method.upper()} {path} {code} has no schema"
