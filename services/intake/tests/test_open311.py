"""The Open311 GeoReport v2 face: services, requests in and out, errors, all schema-checked."""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from xml.etree import ElementTree as ET

import jsonschema
import open311_schemas as schemas
import pytest
from intake_samples import CST, case_closed, case_routed, consume, directory_events
from sqlalchemy import select

from eventbus import testing
from intake import models
from intake.catalogue import CATEGORIES

KEY, OTHER_KEY = "k-city-org-0123456789", "k-lw-org-9876543210"
PHONE = "13905961234"


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    monkeypatch.setenv("NIGHTTALK_OPEN311_KEYS", f"{KEY}=city-org, {OTHER_KEY}=lw-org")


def valid(schema, document):
    """Validate a document against a GeoReport v2 schema, date-times included."""
    jsonschema.Draft202012Validator(schema).validate(document)
    for row in document if isinstance(document, list) else [document]:
        for name, value in row.items():
            if name.endswith("_datetime") and value is not None:
                assert dt.datetime.fromisoformat(value).tzinfo is not None, (name, value)
    return document


def form(**changes):
    data = {
        "api_key": KEY,
        "service_code": "land",
        "lat": "24.5130",
        "long": "117.6470",
        "address_string": "芝山镇 胜利路 12 号",
        "description": "宅基地被占用\n邻居在我家宅基地上搭建棚屋, 已三个月。",
        "first_name": "河清",
        "last_name": "林",
        "phone": PHONE,
        "email": "lin@example.cn",
        "media_url": "https://example.cn/photo/1.jpg",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def post(client, fmt="json", headers=None, **changes):
    return client.post(f"/open311/v2/requests.{fmt}", data=form(**changes), headers=headers or {})


def test_services_list_the_category_catalogue_in_json_and_xml(client):
    r = client.get("/open311/v2/services.json")
    assert r.status_code == 200 and r.mimetype == "application/json"
    services = valid(schemas.SERVICES, r.get_json())
    assert [s["service_code"] for s in services] == list(CATEGORIES)
    xml = client.get("/open311/v2/services.xml")
    assert xml.mimetype == "text/xml"
    assert xml.get_data().startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(xml.get_data())
    assert root.tag == "services"
    assert [s.findtext("service_code") for s in root.findall("service")] == list(CATEGORIES)
    assert root.find("service").findtext("metadata") == "false"


def test_a_service_definition_and_an_unknown_service(client):
    r = client.get("/open311/v2/services/wage_arrears.json")
    assert valid(schemas.SERVICE_DEFINITION, r.get_json()) == {
        "service_code": "wage_arrears",
        "attributes": [],
    }
    missing = client.get("/open311/v2/services/potholes.json")
    assert missing.status_code == 404
    valid(schemas.ERRORS, missing.get_json())
    xml = client.get("/open311/v2/services/potholes.xml")
    assert ET.fromstring(xml.get_data()).find("error").findtext("code") == "404"
    assert client.get("/open311/v2/services.yaml").status_code == 404


def test_a_request_becomes_an_online_case_routed_by_routing(client, bearer, database_url, caplog):
    caplog.set_level(logging.DEBUG)
    r = post(client)
    assert r.status_code == 200, r.get_json()
    created = valid(schemas.REQUEST_CREATED, r.get_json())
    number = created[0]["service_request_id"]
    assert number.startswith("city-org-")
    case = client.get(f"/v1/cases/{number}", headers=bearer()).get_json()
    assert (case["channel"], case["disposition"], case["category"]) == (
        "online",
        {"action": "route"},
        "land",
    )
    assert case["summary"] == "宅基地被占用"
    assert case["location"] == "芝山镇 胜利路 12 号"
    visit = client.get(f"/v1/visits/{case['visit_id']}", headers=bearer()).get_json()
    assert visit["visitor"]["name"] == "林*清" and visit["visitor"]["phone"] == "139****1234"
    assert PHONE not in caplog.text and "lin@example.cn" not in caplog.text
    shown = client.get(f"/open311/v2/requests/{number}.json?api_key={KEY}")
    request = valid(schemas.SERVICE_REQUESTS, shown.get_json())[0]
    assert request["status"] == "open"
    assert (request["lat"], request["long"]) == (24.513, 117.647)
    assert request["media_url"] == "https://example.cn/photo/1.jpg"
    assert request["agency_responsible"] is None  # not routed yet
    assert PHONE not in shown.get_data(as_text=True)


def test_a_request_located_only_by_address_id_keeps_it_as_its_location(client, bearer):
    """The form accepts address_id alone as the location: the partner must be told it."""
    r = post(client, lat=None, long=None, address_string=None, address_id="ZZ-0451-12")
    assert r.status_code == 200, r.get_json()
    number = r.get_json()[0]["service_request_id"]
    case = client.get(f"/v1/cases/{number}", headers=bearer()).get_json()
    assert case["location"] == "address_id ZZ-0451-12"
    shown = client.get(f"/open311/v2/requests/{number}.json?api_key={KEY}").get_json()
    request = valid(schemas.SERVICE_REQUESTS, shown)[0]
    assert (request["address_id"], request["address"]) == ("ZZ-0451-12", None)


def test_status_agency_and_expected_time_follow_routings_events(client, runtime):
    number = post(client).get_json()[0]["service_request_id"]
    with runtime.sessions() as session:
        case_id = session.scalars(
            select(models.Case.id).where(models.Case.case_number == number)
        ).one()
    due = dt.datetime(2026, 12, 28, 17, 0, tzinfo=CST)
    consume(
        runtime,
        *directory_events(),
        case_routed(case_id, number, "lw-buwen", routed_at=dt.datetime.now(CST), due_at=due),
    )
    routed = valid(
        schemas.SERVICE_REQUESTS,
        client.get(f"/open311/v2/requests/{number}.json?api_key={KEY}").get_json(),
    )[0]
    assert routed["status"] == "open"
    assert routed["agency_responsible"] == "unit lw-buwen"  # its name in the directory
    assert dt.datetime.fromisoformat(routed["expected_datetime"]) == due
    consume(runtime, case_closed(case_id, number, at=dt.datetime.now(CST)))
    closed = client.get(f"/open311/v2/requests.json?api_key={KEY}&status=closed").get_json()
    assert [r["service_request_id"] for r in valid(schemas.SERVICE_REQUESTS, closed)] == [number]
    assert client.get(f"/open311/v2/requests.json?api_key={KEY}&status=open").get_json() == []


def test_requests_are_listed_filtered_and_in_xml(client):
    first = post(client).get_json()[0]["service_request_id"]
    second = post(client, service_code="policing").get_json()[0]["service_request_id"]
    listed = valid(
        schemas.SERVICE_REQUESTS,
        client.get(f"/open311/v2/requests.json?api_key={KEY}").get_json(),
    )
    assert [r["service_request_id"] for r in listed] == [second, first]
    only = client.get(f"/open311/v2/requests.json?api_key={KEY}&service_code=policing")
    assert [r["service_request_id"] for r in only.get_json()] == [second]
    by_id = client.get(f"/open311/v2/requests.json?api_key={KEY}&service_request_id={first}")
    assert [r["service_request_id"] for r in by_id.get_json()] == [first]
    xml = ET.fromstring(client.get(f"/open311/v2/requests.xml?api_key={KEY}").get_data())
    assert xml.tag == "service_requests"
    assert [r.findtext("service_request_id") for r in xml.findall("request")] == [second, first]


def test_a_key_reads_only_its_own_units_online_requests(client, bearer, register):
    number = post(client).get_json()[0]["service_request_id"]
    night_talk_case = register()["cases"][1]["case_number"]
    other = client.get(f"/open311/v2/requests/{number}.json?api_key={OTHER_KEY}")
    assert other.status_code == 404
    valid(schemas.ERRORS, other.get_json())
    assert client.get(f"/open311/v2/requests.json?api_key={OTHER_KEY}").get_json() == []
    # A petition received at the night-talk desk is not an Open311 request.
    assert (
        client.get(f"/open311/v2/requests/{night_talk_case}.json?api_key={KEY}").status_code == 404
    )


@pytest.mark.parametrize(
    "path",
    [
        "/open311/v2/requests.json",
        "/open311/v2/requests.json?api_key=wrong",
        "/open311/v2/requests/city-org-20261127-0001.json?api_key=wrong",
    ],
)
def test_reading_requests_needs_a_valid_api_key(client, path):
    r = client.get(path)
    assert r.status_code in (400, 403)
    valid(schemas.ERRORS, r.get_json())
    assert "api_key" in r.get_json()[0]["description"]


def test_posting_with_a_wrong_api_key_is_403_and_creates_nothing(client):
    r = post(client, api_key="not-a-key")
    assert r.status_code == 403
    assert valid(schemas.ERRORS, r.get_json())[0]["code"] == 403
    assert client.get(f"/open311/v2/requests.json?api_key={KEY}").get_json() == []


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"service_code": "potholes"}, "service_code"),
        ({"service_code": None}, "service_code"),
        ({"api_key": None}, "api_key"),
        ({"lat": "north", "long": "117.6"}, "lat"),
        ({"lat": "91", "long": "117.6"}, "lat"),
        ({"lat": "24.5", "long": None, "address_string": None}, "long"),
        ({"lat": None, "long": None, "address_string": None}, "address_string"),
        ({"description": None}, "description"),
        ({"description": "x" * 4001}, "description"),
        ({"description": "宅基地\x00被占"}, "description"),
        ({"address_string": "芝山镇\x00"}, "address_string"),
        ({"phone": "call me"}, "phone"),
        ({"email": "not an email"}, "email"),
        ({"media_url": "javascript:alert(1)"}, "media_url"),
        ({"first_name": "x" * 26}, "first_name"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_requests_get_open311_errors_naming_the_field(client, changes, field):
    r = post(client, **changes)
    assert r.status_code == 400, r.get_json()
    errors = valid(schemas.ERRORS, r.get_json())
    assert any(e["description"].startswith(f"{field}:") for e in errors), errors


def test_errors_come_in_xml_for_xml_requests(client):
    r = post(client, "xml", service_code="potholes")
    assert r.status_code == 400 and r.mimetype == "text/xml"
    error = ET.fromstring(r.get_data()).find("error")
    assert error.findtext("code") == "400"
    assert error.findtext("description").startswith("service_code:")


def test_a_json_body_is_refused_with_415(client):
    r = client.post("/open311/v2/requests.json", json=form())
    assert r.status_code == 415
    valid(schemas.ERRORS, r.get_json())


def test_bad_query_arguments_get_open311_errors(client):
    for query, field in [
        ("status=pending", "status"),
        ("start_date=yesterday", "start_date"),
        ("start_date=0001-01-01T00:00:00%2B08:00", "start_date"),
        ("end_date=9999-12-31T23:00:00-08:00", "end_date"),
        ("service_request_id=not-a-number", "service_request_id"),
        ("surprise=1", "surprise"),
    ]:
        r = client.get(f"/open311/v2/requests.json?api_key={KEY}&{query}")
        assert r.status_code == 400, (query, r.get_json())
        assert valid(schemas.ERRORS, r.get_json())[0]["description"].startswith(f"{field}:")
    assert client.get("/open311/v2/services.json?x=1").status_code == 400
    assert client.get(f"/open311/v2/requests/a%00b.json?api_key={KEY}").status_code == 404


def test_a_retry_with_an_idempotency_key_creates_nothing_new(client):
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    first = post(client, headers=headers)
    again = post(client, headers=headers)
    assert first.get_json() == again.get_json()
    assert len(client.get(f"/open311/v2/requests.json?api_key={KEY}").get_json()) == 1
    assert post(client, headers=headers, service_code="policing").status_code == 400


def test_the_longest_idempotency_key_is_kept_like_any_other(client):
    # Open311's keys are stored under their own prefix: the longest one (200 characters,
    # as the endpoint allows) did not fit the key column on PostgreSQL (a 500).
    headers = {"Idempotency-Key": "k" * 200}
    first = post(client, headers=headers)
    assert first.status_code in (200, 201), first.get_data(as_text=True)
    assert post(client, headers=headers).get_json() == first.get_json()
    assert len(client.get(f"/open311/v2/requests.json?api_key={KEY}").get_json()) == 1


def test_json_answers_are_utf8(client):
    raw = client.get("/open311/v2/services.json").get_data()
    assert json.loads(raw.decode("utf-8"))[0]["service_name"] == "拆迁补偿"


def test_the_reads_end_in_commit(client, bearer, runtime):
    """So that psycopg keeps the statements it prepared (it forgets them at a ROLLBACK)."""
    number = post(client).get_json()[0]["service_request_id"]
    visit_id = client.get(f"/v1/cases/{number}", headers=bearer()).get_json()["visit_id"]
    reads = [
        (f"/open311/v2/requests.json?api_key={KEY}", {}),
        (f"/open311/v2/requests/{number}.json?api_key={KEY}", {}),
        (f"/v1/visits/{visit_id}", bearer()),
        ("/v1/sessions", bearer()),
    ]
    with testing.transaction_endings(runtime.engine) as endings:
        for path, headers in reads:
            response = client.get(path, headers=headers)
            assert response.status_code == 200, (path, response.get_json())

    assert endings == ["commit"] * len(reads)
