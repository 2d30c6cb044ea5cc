"""Every error on the Open311 face is an Open311 error list, in the format the path asks
for, whichever layer refuses the request; the /v1 API keeps its own error shape."""

from __future__ import annotations

import io
from xml.etree import ElementTree as ET

import jsonschema
import open311_schemas as schemas
import pytest
from werkzeug.datastructures import MultiDict

from intake import open311
from intake.app import create_app
from servicekit.web import MAX_BODY_BYTES

KEY = "k-city-org-0123456789"


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    monkeypatch.setenv("NIGHTTALK_OPEN311_KEYS", f"{KEY}=city-org")


def errors_of(response, fmt):
    """Return an Open311 error list as (code, description) pairs, checking its shape."""
    if fmt == "xml":
        assert response.mimetype == "text/xml", response.get_data()[:200]
        root = ET.fromstring(response.get_data())
        assert root.tag == "errors"
        rows = [(int(e.findtext("code")), e.findtext("description")) for e in root]
    else:
        assert response.mimetype == "application/json", response.get_data()[:200]
        jsonschema.Draft202012Validator(schemas.ERRORS).validate(response.get_json())
        rows = [(e["code"], e["description"]) for e in response.get_json()]
    assert rows and all(code == response.status_code for code, _ in rows)
    return rows


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize("argument", ["service_code=land%00", "api_key=k%00"])
def test_a_nul_in_an_open311_query_is_400_naming_the_argument(client, fmt, argument):
    r = client.get(f"/open311/v2/requests.{fmt}?api_key={KEY}&{argument}")
    assert r.status_code == 400
    (error,) = errors_of(r, fmt)
    assert error[1].startswith(argument.split("=")[0] + ":"), error


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize(
    "method, path, allowed",
    [
        ("put", "/open311/v2/requests.{fmt}", {"GET", "POST"}),
        ("delete", "/open311/v2/requests/city-org-20261115-0001.{fmt}", {"GET"}),
        ("post", "/open311/v2/services.{fmt}", {"GET"}),
    ],
)
def test_a_wrong_method_is_405_as_an_open311_error_list(client, fmt, method, path, allowed):
    r = getattr(client, method)(path.format(fmt=fmt) + f"?api_key={KEY}")
    assert r.status_code == 405
    errors_of(r, fmt)
    assert allowed <= {m.strip() for m in r.headers["Allow"].split(",")}


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_a_path_of_the_face_that_names_nothing_is_404_as_an_open311_error_list(client, fmt):
    r = client.get(f"/open311/v2/discovery.{fmt}")
    assert r.status_code == 404
    errors_of(r, fmt)


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_a_chunked_body_over_the_limit_is_413_as_an_open311_error_list(client, fmt):
    body = b"api_key=k&description=" + b"x" * MAX_BODY_BYTES
    r = client.post(
        f"/open311/v2/requests.{fmt}",
        input_stream=io.BytesIO(body),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Transfer-Encoding": "chunked",
        },
    )
    assert r.status_code == 413
    ((_, description),) = errors_of(r, fmt)
    assert "too large" in description


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_an_unexpected_failure_is_500_as_an_open311_error_list(client, monkeypatch, fmt):
    def broken():
        raise RuntimeError("the key store is broken")

    monkeypatch.setattr(open311, "api_keys", broken)
    r = client.get(f"/open311/v2/requests.{fmt}?api_key={KEY}")
    assert r.status_code == 500
    ((_, description),) = errors_of(r, fmt)
    assert "broken" not in description


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_a_caller_over_the_rate_limit_gets_429_as_an_open311_error_list(
    database_url, amqp_url, fmt
):
    limited = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "AMQP_URL": amqp_url,
            "RATE_LIMIT": "2/minute",
        }
    ).test_client()
    path = f"/open311/v2/services.{fmt}"
    assert [limited.get(path).status_code for _ in range(2)] == [200, 200]
    refused = limited.get(path)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    ((_, description),) = errors_of(refused, fmt)
    assert "rate limit exceeded: at most 2 per 1 minute" in description


def test_an_argument_given_twice_is_refused_naming_it_not_read_as_its_first_value(client, bearer):
    # Read as its first value, `status=open&status=closed` listed the open requests only.
    v1 = client.get("/v1/cases?category=land&category=labour", headers=bearer())
    assert v1.status_code == 422
    assert list(v1.get_json()["errors"]["query"]) == ["category"]
    listed = client.get(f"/open311/v2/requests.json?api_key={KEY}&status=open&status=closed")
    assert listed.status_code == 400
    ((_, description),) = errors_of(listed, "json")
    assert description.startswith("status") and "2 times" in description
    posted = client.post(
        "/open311/v2/requests.json",
        data=MultiDict(
            [
                ("api_key", KEY),
                ("service_code", "land"),
                ("service_code", "labour"),
                ("address_string", "芝山镇"),
                ("description", "宅基地被占用"),
            ]
        ),
    )
    assert posted.status_code == 400
    ((_, description),) = errors_of(posted, "json")
    assert description.startswith("service_code")


def test_the_v1_api_keeps_its_error_shape(client, bearer):
    nul = client.get("/v1/cases?category=land%00", headers=bearer())
    assert nul.status_code == 422
    assert nul.get_json()["errors"] == {
        "query": {"category": [nul.get_json()["errors"]["query"]["category"][0]]}
    }
    assert set(nul.get_json()) == {"code", "status", "message", "errors"}
    wrong = client.put("/v1/visits", json={}, headers=bearer())
    assert wrong.status_code == 405 and "POST" in wrong.headers["Allow"]
    assert set(wrong.get_json()) == {"code", "status", "message"}
    missing = client.get("/v1/nothing", headers=bearer())
    assert missing.status_code == 404 and missing.get_json()["code"] == 404
