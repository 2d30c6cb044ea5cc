"""Listing cases: filters, capped pages, and who sees what (unit, jurisdiction, admin)."""

from __future__ import annotations

import pytest
from intake_samples import consume, directory_events


def numbers(response) -> list[str]:
    assert response.status_code == 200, response.get_json()
    return [c["case_number"] for c in response.get_json()["items"]]


def test_a_unit_lists_its_cases_newest_first_with_filters(client, bearer, register):
    first = register()  # 2026-11-15 17:05, night talk: 3 cases
    later = register(channel="daily", received_at="2026-11-20T09:00:00+08:00")
    every = numbers(client.get("/v1/cases", headers=bearer()))
    assert every[:3] == [c["case_number"] for c in reversed(later["cases"])]
    assert len(every) == 6

    def only(**args):
        return numbers(client.get("/v1/cases", query_string=args, headers=bearer()))

    assert only(status="resolved_on_spot") == [
        later["cases"][0]["case_number"],
        first["cases"][0]["case_number"],
    ]
    assert len(only(status="open")) == 4
    assert only(category="medical_reimbursement", channel="night_talk") == [
        first["cases"][1]["case_number"]
    ]
    assert len(only(channel="daily")) == 3
    period = only(**{"from": "2026-11-15T00:00:00+08:00", "to": "2026-11-16T00:00:00+08:00"})
    assert sorted(period) == sorted(c["case_number"] for c in first["cases"])
    assert only(**{"from": "2026-11-21T00:00:00+08:00"}) == []
    # The same visitor raised the same open categories again: those are repeats.
    assert len(only(repeat="true")) == 2 and len(only(repeat="false")) == 4


def test_pages_are_capped_by_the_server(client, bearer, register):
    register()
    register(received_at="2026-11-15T18:00:00+08:00")
    page = client.get("/v1/cases?page_size=4&page=2", headers=bearer()).get_json()
    assert (page["page"], page["page_size"], page["total"]) == (2, 4, 6)
    assert len(page["items"]) == 2
    assert client.get("/v1/cases?page_size=101", headers=bearer()).status_code == 422
    assert client.get("/v1/cases?page=0", headers=bearer()).status_code == 422
    assert client.get("/v1/cases", headers=bearer()).get_json()["page_size"] == 20


@pytest.mark.parametrize(
    "query, field",
    [
        ("status=lost", "status"),
        ("category=aliens", "category"),
        ("channel=pigeon", "channel"),
        ("from=yesterday", "from"),
        ("from=2026-11-15T00:00:00", "from"),  # no time zone
        ("from=2026-11-16T00:00:00%2B08:00&to=2026-11-15T00:00:00%2B08:00", "to"),
        ("from=0001-01-01T00:00:00%2B08:00", "from"),  # out of range, not an overflow
        ("to=9999-12-31T23:59:59-08:00", "to"),
        ("page_size=abc", "page_size"),
        ("unit=Not%20A%20Unit", "unit"),
        ("surprise=1", "surprise"),
        ("repeat=maybe", "repeat"),
    ],
)
def test_bad_filters_get_422_naming_the_argument(client, bearer, query, field):
    r = client.get(f"/v1/cases?{query}", headers=bearer())
    assert r.status_code == 422, r.get_json()
    assert field in r.get_json()["errors"]["query"]


def test_the_list_needs_a_token(client):
    assert client.get("/v1/cases").status_code == 401


def test_another_unit_sees_none_of_them_and_an_admin_all(client, bearer, register):
    register("city-org")
    register("xc-org")
    assert len(numbers(client.get("/v1/cases", headers=bearer("lw-org")))) == 0
    assert len(numbers(client.get("/v1/cases", headers=bearer("xc-org")))) == 3
    mine = numbers(client.get("/v1/cases?unit=city-org", headers=bearer("xc-org")))
    assert mine == []  # filtering by another unit reveals nothing
    assert len(numbers(client.get("/v1/cases", headers=bearer("lw-org", "admin")))) == 6


def test_a_supervisor_sees_its_jurisdiction_from_the_directory_copy(
    client, bearer, register, runtime
):
    lw_cases = register("lw-buwen")["cases"] + register("lw-org")["cases"]
    xc_cases = register("xc-org")["cases"]
    supervisor = bearer("lw", "supervisor")
    # Before routing published its directory, a supervisor sees its own unit only.
    assert numbers(client.get("/v1/cases", headers=supervisor)) == []
    consume(runtime, *directory_events())
    seen = numbers(client.get("/v1/cases", headers=supervisor))
    assert sorted(seen) == sorted(c["case_number"] for c in lw_cases)
    assert (
        client.get(f"/v1/cases/{lw_cases[0]['case_number']}", headers=supervisor).status_code == 200
    )
    assert (
        client.get(f"/v1/cases/{xc_cases[0]['case_number']}", headers=supervisor).status_code == 404
    )
    # The city supervises everything below it.
    assert len(numbers(client.get("/v1/cases", headers=bearer("city", "supervisor")))) == 9
    # A reception clerk of the district is not a supervisor: its own unit only.
    assert numbers(client.get("/v1/cases", headers=bearer("lw"))) == []


def test_a_departments_supervisor_governs_its_county_or_the_city(client, bearer, register, runtime):
    """DESIGN: a city department the whole city, a county's departments that county;
    a township itself."""
    consume(runtime, *directory_events())
    lw_cases = register("lw-buwen")["cases"] + register("lw-guokeng")["cases"]
    xc_cases = register("xc-org")["cases"]
    county_department = numbers(client.get("/v1/cases", headers=bearer("lw-org", "supervisor")))
    assert sorted(county_department) == sorted(c["case_number"] for c in lw_cases)
    city_department = numbers(client.get("/v1/cases", headers=bearer("city-org", "supervisor")))
    assert sorted(city_department) == sorted(c["case_number"] for c in lw_cases + xc_cases)
    township = numbers(client.get("/v1/cases", headers=bearer("lw-buwen", "supervisor")))
    assert sorted(township) == sorted(c["case_number"] for c in lw_cases[:3])
    assert (
        client.get(
            f"/v1/cases/{xc_cases[0]['case_number']}", headers=bearer("lw-org", "supervisor")
        ).status_code
        == 404
    )


def test_a_supervisor_reads_visits_of_its_jurisdiction_only(client, bearer, register, runtime):
    consume(runtime, *directory_events())
    lw_visit = register("lw-buwen")["visit_id"]
    xc_visit = register("xc-org")["visit_id"]
    supervisor = bearer("lw", "supervisor")
    assert client.get(f"/v1/visits/{lw_visit}", headers=supervisor).status_code == 200
    assert client.get(f"/v1/visits/{xc_visit}", headers=supervisor).status_code == 404


def test_a_case_shows_its_repeats_and_follow_ups(client, bearer, register, visit_body):
    first = register()
    again = register(received_at="2026-11-15T18:00:00+08:00")
    original = first["cases"][2]["case_number"]
    follow_up = {k: v for k, v in visit_body.items() if k != "issues"}
    follow_up["follow_ups"] = [original]
    assert client.post("/v1/visits", json=follow_up, headers=bearer()).status_code == 201
    shown = client.get(f"/v1/cases/{original}", headers=bearer()).get_json()
    assert shown["repeat"] is False
    assert shown["repeat_count"] == 2  # one repeat registration, one declared follow-up
    repeat = client.get(f"/v1/cases/{again['cases'][2]['case_number']}", headers=bearer())
    assert repeat.get_json()["repeat"] is True
    assert repeat.get_json()["repeat_of"] == first["cases"][2]["case_id"]
    assert repeat.get_json()["repeat_count"] == 0
