"""Reception sessions: the night-talk day window, extra sessions, and units the directory knows."""

from __future__ import annotations

import copy

import pytest
from intake_samples import consume, directory_events, unit_changed

NOVEMBER_15 = "2026-11-15T{}:00+08:00"


def post_visit(client, bearer, visit_body, unit="city-org", **changes):
    body = copy.deepcopy(visit_body)
    body.update(changes)
    return client.post("/v1/visits", json=body, headers=bearer(unit))


@pytest.mark.parametrize("clock", ["16:00", "17:05", "22:59", "23:00"])
def test_a_night_talk_visit_on_the_15th_between_16_and_23_is_accepted(
    client, bearer, visit_body, clock
):
    r = post_visit(client, bearer, visit_body, received_at=NOVEMBER_15.format(clock))
    assert r.status_code == 201, r.get_json()


@pytest.mark.parametrize(
    "received_at",
    [
        NOVEMBER_15.format("15:59"),
        NOVEMBER_15.format("23:01"),
        "2026-11-14T17:05:00+08:00",
        "2026-11-16T17:05:00+08:00",
        "2026-11-15T07:59:00Z",  # 15:59 in Zhangzhou
    ],
)
def test_a_night_talk_visit_outside_the_session_is_refused_naming_received_at(
    client, bearer, visit_body, database_url, received_at
):
    r = post_visit(client, bearer, visit_body, received_at=received_at)
    assert r.status_code == 422, r.get_json()
    message = r.get_json()["errors"]["json"]["received_at"][0]
    assert "night-talk day" in message and "16:00–23:00" in message
    assert "POST /v1/sessions" in message


def test_the_session_is_read_in_the_programmes_time_zone(client, bearer, visit_body):
    r = post_visit(client, bearer, visit_body, received_at="2026-11-15T08:05:00Z")
    assert r.status_code == 201  # 16:05 in Zhangzhou


@pytest.mark.parametrize("channel", ["daily", "roving", "letter", "phone", "online"])
def test_other_channels_need_no_session(client, bearer, visit_body, channel):
    r = post_visit(
        client, bearer, visit_body, channel=channel, received_at="2026-11-14T10:00:00+08:00"
    )
    assert r.status_code == 201, r.get_json()


def test_the_night_talk_day_is_configurable(client, bearer, visit_body, monkeypatch):
    monkeypatch.setenv("NIGHTTALK_NIGHT_TALK_DAY", "20")
    monkeypatch.setenv("NIGHTTALK_NIGHT_TALK_HOURS", "18:30-21:00")
    ok = post_visit(client, bearer, visit_body, received_at="2026-11-20T18:30:00+08:00")
    assert ok.status_code == 201, ok.get_json()
    late = post_visit(client, bearer, visit_body, received_at="2026-11-20T21:30:00+08:00")
    assert late.status_code == 422
    assert "the 20th" in late.get_json()["errors"]["json"]["received_at"][0]
    assert post_visit(client, bearer, visit_body).status_code == 422  # the 15th, 17:05


def test_an_extra_session_opens_night_talk_for_its_unit_only(client, bearer, visit_body):
    when = "2026-11-22T19:00:00+08:00"
    assert post_visit(client, bearer, visit_body, received_at=when).status_code == 422
    headers = {**bearer(), "Idempotency-Key": "extra-night-1122"}
    session = {
        "opens_at": "2026-11-22T18:00:00+08:00",
        "closes_at": "2026-11-22T22:00:00+08:00",
        "note": "郭坑镇巡回夜谈",
    }
    opened = client.post("/v1/sessions", json=session, headers=headers)
    assert opened.status_code == 201, opened.get_json()
    assert opened.get_json()["kind"] == "extra" and opened.get_json()["unit"] == "city-org"
    again = client.post("/v1/sessions", json=session, headers=headers)
    assert again.status_code == 201 and again.get_json() == opened.get_json()
    assert post_visit(client, bearer, visit_body, received_at=when).status_code == 201
    other = post_visit(client, bearer, visit_body, unit="lw-org", received_at=when)
    assert other.status_code == 422
    after = post_visit(client, bearer, visit_body, received_at="2026-11-22T22:01:00+08:00")
    assert after.status_code == 422


def test_sessions_are_listed_for_a_period(client, bearer):
    client.post(
        "/v1/sessions",
        json={"opens_at": "2026-11-22T18:00:00+08:00", "closes_at": "2026-11-22T22:00:00+08:00"},
        headers=bearer(),
    )
    r = client.get(
        "/v1/sessions?from=2026-10-01T00:00:00%2B08:00&to=2026-12-01T00:00:00%2B08:00",
        headers=bearer(),
    )
    assert r.status_code == 200, r.get_json()
    items = r.get_json()["items"]
    assert [(i["kind"], i["opens_at"]) for i in items] == [
        ("night_talk_day", "2026-10-15T16:00:00+08:00"),
        ("night_talk_day", "2026-11-15T16:00:00+08:00"),
        ("extra", "2026-11-22T10:00:00+00:00"),
    ]
    assert items[1]["closes_at"] == "2026-11-15T23:00:00+08:00"
    theirs = client.get("/v1/sessions?unit=city-org", headers=bearer("lw-org"))
    assert theirs.status_code == 404  # another unit's sessions are not yours to read
    assert client.get("/v1/sessions", headers=bearer()).status_code == 200


@pytest.mark.parametrize(
    "body, field",
    [
        ({"closes_at": "2026-11-22T22:00:00+08:00"}, "opens_at"),
        ({"opens_at": "2026-11-22T18:00:00+08:00"}, "closes_at"),
        (
            {"opens_at": "2026-11-22T18:00:00+08:00", "closes_at": "2026-11-22T17:00:00+08:00"},
            "closes_at",
        ),
        (
            {"opens_at": "2026-11-22T08:00:00+08:00", "closes_at": "2026-11-22T22:00:00+08:00"},
            "closes_at",
        ),
        (
            {"opens_at": "2020-11-22T18:00:00+08:00", "closes_at": "2020-11-22T20:00:00+08:00"},
            "opens_at",
        ),
        ({"opens_at": "2026-11-22T18:00:00", "closes_at": "2026-11-22T20:00:00"}, "opens_at"),
        (
            {"opens_at": "2026-11-22T18:00:00+08:00", "closes_at": "9999-12-31T23:00:00-08:00"},
            "closes_at",
        ),
        (
            {
                "opens_at": "2026-11-22T18:00:00+08:00",
                "closes_at": "2026-11-22T20:00:00+08:00",
                "note": "x" * 201,
            },
            "note",
        ),
        (
            {
                "opens_at": "2026-11-22T18:00:00+08:00",
                "closes_at": "2026-11-22T20:00:00+08:00",
                "note": "夜谈\x00",
            },
            "note",
        ),
        (
            {
                "opens_at": "2026-11-22T18:00:00+08:00",
                "closes_at": "2026-11-22T20:00:00+08:00",
                "room": "3",
            },
            "room",
        ),
    ],
)
def test_bad_sessions_get_422_naming_the_field(client, bearer, body, field):
    r = client.post("/v1/sessions", json=body, headers=bearer())
    assert r.status_code == 422, r.get_json()
    assert field in r.get_json()["errors"]["json"]


@pytest.mark.parametrize(
    "query, field",
    [
        ("from=soon", "from"),
        ("from=0001-01-01T00:00:00%2B08:00", "from"),
        ("to=9999-12-31T23:00:00-08:00", "to"),
        ("from=2026-01-01T00:00:00%2B08:00&to=2027-06-01T00:00:00%2B08:00", "to"),
        ("unit=NO", "unit"),
        ("colour=red", "colour"),
    ],
)
def test_bad_session_queries_get_422(client, bearer, query, field):
    r = client.get(f"/v1/sessions?{query}", headers=bearer())
    assert r.status_code == 422 and field in r.get_json()["errors"]["query"]


def test_sessions_need_a_reception_token(client, bearer):
    body = {"opens_at": "2026-11-22T18:00:00+08:00", "closes_at": "2026-11-22T20:00:00+08:00"}
    assert client.post("/v1/sessions", json=body).status_code == 401
    assert (
        client.post("/v1/sessions", json=body, headers=bearer("lw", "partner")).status_code == 403
    )
    r = client.post("/v1/sessions", data="x", headers={**bearer(), "Content-Type": "text/plain"})
    assert r.status_code == 415


# -- units the directory knows ---------------------------------------------------------


def test_an_unknown_unit_is_refused_naming_the_field(client, bearer, visit_body, runtime):
    consume(runtime, *directory_events())
    body = copy.deepcopy(visit_body)
    body["issues"][1]["disposition"]["unit"] = "lw-nowhere"
    body["issues"][2]["accused"]["unit"] = "xc-nowhere"
    r = client.post("/v1/visits", json=body, headers=bearer())
    assert r.status_code == 422, r.get_json()
    errors = r.get_json()["errors"]["json"]["issues"]
    assert errors["1"]["disposition"]["unit"] == ["unknown unit: lw-nowhere"]
    assert errors["2"]["accused"]["unit"] == ["unknown unit: xc-nowhere"]
    assert "0" not in errors
    # The standard visit signs over to lw-guokeng and accuses lw-buwen: both known.
    assert client.post("/v1/visits", json=visit_body, headers=bearer()).status_code == 201


def test_a_retired_unit_is_refused(client, bearer, visit_body, runtime):
    consume(
        runtime, *directory_events(), unit_changed("lw-guokeng", "lw", revision=2, active=False)
    )
    r = client.post("/v1/visits", json=visit_body, headers=bearer())
    assert r.status_code == 422
    assert r.get_json()["errors"]["json"]["issues"]["1"]["disposition"]["unit"]


def test_before_routing_publishes_its_directory_any_unit_code_is_accepted(
    client, bearer, visit_body
):
    body = copy.deepcopy(visit_body)
    body["issues"][1]["disposition"]["unit"] = "lw-nowhere"
    assert client.post("/v1/visits", json=body, headers=bearer()).status_code == 201


def test_a_reused_key_with_another_session_is_refused(client, bearer):
    headers = {**bearer(), "Idempotency-Key": "extra-night-reused"}
    body = {"opens_at": "2026-11-22T18:00:00+08:00", "closes_at": "2026-11-22T20:00:00+08:00"}
    assert client.post("/v1/sessions", json=body, headers=headers).status_code == 201
    other = client.post(
        "/v1/sessions", json={**body, "closes_at": "2026-11-22T21:00:00+08:00"}, headers=headers
    )
    assert other.status_code == 422
    assert "Idempotency-Key" in other.get_json()["errors"]["headers"]


def test_a_supervisor_lists_sessions_of_units_in_its_jurisdiction(client, bearer, runtime):
    body = {"opens_at": "2026-11-22T18:00:00+08:00", "closes_at": "2026-11-22T20:00:00+08:00"}
    client.post("/v1/sessions", json=body, headers=bearer("lw-buwen"))
    supervisor = bearer("lw", "supervisor")
    period = "from=2026-11-20T00:00:00%2B08:00&to=2026-11-30T00:00:00%2B08:00"
    assert client.get(f"/v1/sessions?unit=lw-buwen&{period}", headers=supervisor).status_code == 404
    consume(runtime, *directory_events())
    r = client.get(f"/v1/sessions?unit=lw-buwen&{period}", headers=supervisor)
    assert [i["kind"] for i in r.get_json()["items"]] == ["extra"]
    assert client.get("/v1/sessions?unit=xc-org", headers=supervisor).status_code == 404
