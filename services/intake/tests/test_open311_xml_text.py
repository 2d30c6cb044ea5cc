"""Open311's XML stays well-formed: non-characters are refused at the door, and whatever
text is stored already is written so that an XML parser reads it."""

from __future__ import annotations

import copy
from xml.etree import ElementTree as ET

import pytest
from sqlalchemy import update

from intake import models

KEY = "k-city-org-0123456789"


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    monkeypatch.setenv("NIGHTTALK_OPEN311_KEYS", f"{KEY}=city-org")


def form(**changes):
    data = {
        "api_key": KEY,
        "service_code": "land",
        "address_string": "芝山镇 胜利路 12 号",
        "description": "宅基地被占用",
        "first_name": "河清",
        "last_name": "林",
    }
    data.update(changes)
    return data


@pytest.mark.parametrize("character", ["\ufffe", "\uffff", "\ufdd0", "\ufdef"])
@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_an_open311_request_with_a_noncharacter_is_400_naming_the_field(client, character, fmt):
    r = client.post(
        f"/open311/v2/requests.{fmt}", data=form(description=f"宅基地{character}被占用")
    )
    assert r.status_code == 400
    if fmt == "json":
        descriptions = [e["description"] for e in r.get_json()]
    else:
        descriptions = [
            e.findtext("description") for e in ET.fromstring(r.get_data()).iter("error")
        ]
    assert [d.split(":")[0] for d in descriptions] == ["description"], descriptions
    assert client.get(f"/open311/v2/requests.json?api_key={KEY}").get_json() == []


@pytest.mark.parametrize("character", ["\uffff", "\ufffe", "\ufdd5"])
def test_a_desk_visit_with_a_noncharacter_is_422_naming_the_field(
    client, bearer, visit_body, character
):
    body = copy.deepcopy(visit_body)
    body["channel"] = "online"
    body["issues"][0]["summary"] = f"工资{character}拖欠"
    body["visitor"]["address"] = f"郭坑{character}镇"
    r = client.post("/v1/visits", json=body, headers=bearer())
    assert r.status_code == 422, r.get_json()
    errors = r.get_json()["errors"]["json"]
    assert set(errors) == {"issues", "visitor"}
    assert set(errors["issues"]["0"]) == {"summary"} and set(errors["visitor"]) == {"address"}
    assert "non-character" in errors["issues"]["0"]["summary"][0]


def test_text_of_every_language_is_still_taken(client):
    # Ext. B ideographs and emoji are astral too, and no non-character.
    text = "𠏿𠈓 😀 ﷰ ￼ 宅基地"
    r = client.post("/open311/v2/requests.json", data=form(description=text))
    assert r.status_code == 200, r.get_json()
    number = r.get_json()[0]["service_request_id"]
    xml = client.get(f"/open311/v2/requests/{number}.xml?api_key={KEY}")
    assert ET.fromstring(xml.get_data()).find("request").findtext("description") == text


def test_a_stored_text_xml_cannot_hold_does_not_break_the_units_feed(client, runtime):
    first = client.post("/open311/v2/requests.json", data=form()).get_json()[0]
    second = client.post("/open311/v2/requests.json", data=form()).get_json()[0]
    # As a row written before the rules refused these, or by another way in.
    with runtime.sessions() as session, session.begin():
        session.execute(
            update(models.Case)
            .where(models.Case.case_number == second["service_request_id"])
            .values(details="工资\uffff拖欠\ufffe\x0b\x1f end", location="芝山\x01镇")
        )
    for path in (
        f"/open311/v2/requests.xml?api_key={KEY}",
        f"/open311/v2/requests/{second['service_request_id']}.xml?api_key={KEY}",
    ):
        r = client.get(path)
        assert r.status_code == 200
        requests = ET.fromstring(r.get_data()).findall("request")
        shown = {e.findtext("service_request_id"): e for e in requests}
        bad = shown[second["service_request_id"]]
        assert bad.findtext("description") == "工资\ufffd拖欠\ufffd\ufffd\ufffd end"
        assert bad.findtext("address") == "芝山\ufffd镇"
    listed = ET.fromstring(client.get(f"/open311/v2/requests.xml?api_key={KEY}").get_data())
    assert [e.findtext("service_request_id") for e in listed.findall("request")] == [
        second["service_request_id"],
        first["service_request_id"],
    ]
