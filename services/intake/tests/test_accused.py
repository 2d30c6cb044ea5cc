"""A complaint is kept from the unit it accuses and the units below it, as in routing and
supervision: its case, its visit (the visitor's masked identity) and every list of them.

The desk that received it still reads it (it took the complaint from the visitor), and so
does the unit routing made responsible for it (the discipline commission answering a
complaint about the city, every unit being below the city).
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from intake_samples import CST, case_routed, consume, directory_events, unit_changed

VISITOR = {
    "name": "林河清",
    "phone": "13905961234",
    "id_number": "350602195001011234",
    "address": "郭坑镇后巷12号",
}


def issue(summary: str, accused: str | None = None, category: str = "policing") -> dict:
    body = {"category": category, "summary": summary, "disposition": {"action": "route"}}
    if accused:
        body["accused"] = {"unit": accused, "person": "王警官"}
    return body


@pytest.fixture
def directory(runtime):
    """The test directory with three more city departments: police, land, discipline."""
    consume(
        runtime,
        *directory_events(),
        unit_changed("city-police", "city", level="city"),
        unit_changed("city-land", "city", level="city"),
        unit_changed("city-discipline", "city", level="city"),
    )


@pytest.fixture
def file(client, bearer, directory):
    """Return a function registering a daily visit of issues at a unit."""

    def make(unit: str, *issues: dict, **changes) -> dict:
        body = {
            "channel": "daily",
            "received_at": "2026-11-16T10:00:00+08:00",
            "headcount": 1,
            "visitor": VISITOR,
            "issues": list(issues),
            **changes,
        }
        r = client.post("/v1/visits", json=body, headers=bearer(unit))
        assert r.status_code == 201, r.get_json()
        return r.get_json()

    return make


def listed(client, headers) -> list[str]:
    r = client.get("/v1/cases", headers=headers)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    numbers = [c["case_number"] for c in body["items"]]
    assert body["total"] == len(numbers)
    return numbers


def reads(client, headers, visit: dict) -> dict[str, int]:
    """Return the status of reading the visit and each of its cases (by number and id)."""
    seen = {"visit": client.get(f"/v1/visits/{visit['visit_id']}", headers=headers).status_code}
    for case in visit["cases"]:
        by_number = client.get(f"/v1/cases/{case['case_number']}", headers=headers).status_code
        by_id = client.get(f"/v1/cases/{case['case_id']}", headers=headers).status_code
        assert by_number == by_id
        seen[case["case_number"]] = by_number
    return seen


def test_the_accused_units_supervisor_reads_nothing_of_a_complaint_about_it(client, bearer, file):
    visit = file("city-org", issue("派出所民警乱罚款", accused="city-police"))
    number = visit["cases"][0]["case_number"]
    accused = bearer("city-police", "supervisor")
    assert reads(client, accused, visit) == {"visit": 404, number: 404}
    assert number not in listed(client, accused)
    # The same 404 as a case that does not exist: the number leaks nothing.
    missing = client.get(f"/v1/cases/{number}", headers=accused).get_json()
    assert missing == client.get("/v1/cases/city-org-20261116-9999", headers=accused).get_json()

    # Every other reader of the city keeps what it had.
    for unit, roles in [
        ("city-org", ["reception"]),  # the desk that received it
        ("city-org", ["supervisor"]),
        ("city", ["supervisor"]),  # the accused unit's parent
        ("city-land", ["supervisor"]),  # another city department
        ("city-police", ["admin"]),
    ]:
        headers = bearer(unit, *roles)
        assert reads(client, headers, visit) == {"visit": 200, number: 200}, (unit, roles)
        assert number in listed(client, headers), (unit, roles)


def test_a_complaint_about_a_county_is_kept_from_the_units_below_it(client, bearer, file):
    """About the Longwen district (lw), received at one of its townships."""
    visit = file("lw-guokeng", issue("区政府不作为", accused="lw", category="land"))
    number = visit["cases"][0]["case_number"]
    for unit in ("lw", "lw-org", "lw-buwen"):
        headers = bearer(unit, "supervisor")
        assert reads(client, headers, visit) == {"visit": 404, number: 404}, unit
        assert number not in listed(client, headers), unit
    # The township that received it is below the accused, and reads it as its desk does.
    for roles in (["reception"], ["supervisor"]):
        headers = bearer("lw-guokeng", *roles)
        assert reads(client, headers, visit) == {"visit": 200, number: 200}, roles
        assert number in listed(client, headers), roles
    assert reads(client, bearer("city", "supervisor"), visit) == {"visit": 200, number: 200}


def test_a_visit_with_one_issue_about_the_reader_is_kept_from_it_but_not_its_other_cases(
    client, bearer, file
):
    visit = file(
        "city-org",
        issue("派出所民警乱罚款", accused="city-police"),
        issue("宅基地被占用", category="land"),
    )
    about, other = (c["case_number"] for c in visit["cases"])
    accused = bearer("city-police", "supervisor")
    assert reads(client, accused, visit) == {"visit": 404, about: 404, other: 200}
    assert other in listed(client, accused) and about not in listed(client, accused)


def test_a_later_visit_linked_to_a_complaint_about_the_reader_is_kept_from_it(client, bearer, file):
    """A follow-up or a repeat names the complaint: its visitor is the complainant."""
    first = file("city-org", issue("派出所民警乱罚款", accused="city-police"))
    number = first["cases"][0]["case_number"]
    follow_up = file("xc-org", follow_ups=[number])
    # The visitor back about the same category, without naming the unit this time.
    repeat = file("lw-buwen", issue("罚款还没退", category="policing"))
    assert repeat["cases"][0]["repeat_of"] == first["cases"][0]["case_id"]
    accused = bearer("city-police", "supervisor")
    assert client.get(f"/v1/visits/{follow_up['visit_id']}", headers=accused).status_code == 404
    assert client.get(f"/v1/visits/{repeat['visit_id']}", headers=accused).status_code == 404
    city = bearer("city", "supervisor")
    assert client.get(f"/v1/visits/{follow_up['visit_id']}", headers=city).status_code == 200
    assert client.get(f"/v1/visits/{repeat['visit_id']}", headers=city).status_code == 200
    # The desks that received the later visits read their own.
    desk = bearer("xc-org")
    assert client.get(f"/v1/visits/{follow_up['visit_id']}", headers=desk).status_code == 200


def test_the_unit_made_responsible_reads_a_complaint_about_a_unit_above_it(
    client, bearer, file, runtime
):
    """routing sends a complaint about the city itself to the discipline commission."""
    visit = file("lw-guokeng", issue("市里的决定不公", accused="city", category="land"))
    case = visit["cases"][0]
    discipline = bearer("city-discipline", "supervisor")
    assert reads(client, discipline, visit) == {"visit": 404, case["case_number"]: 404}
    consume(
        runtime,
        case_routed(
            case["case_id"],
            case["case_number"],
            "city-discipline",
            routed_at=dt.datetime(2026, 11, 16, 11, 0, tzinfo=CST),
            assignment_id=str(uuid.uuid4()),
        ),
    )
    assert reads(client, discipline, visit) == {"visit": 200, case["case_number"]: 200}
    assert case["case_number"] in listed(client, discipline)
    # Another city department, below the city too, still does not.
    police = bearer("city-police", "supervisor")
    assert reads(client, police, visit) == {"visit": 404, case["case_number"]: 404}
