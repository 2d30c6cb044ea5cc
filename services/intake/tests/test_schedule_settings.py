"""A bad schedule or time-zone setting stops intake at start, naming the variable; the
night-talk hours may end at 24:00, midnight at the end of the day."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from intake.app import create_app
from servicekit.testing import start_refused

BAD_SETTINGS = [
    ("NIGHTTALK_NIGHT_TALK_HOURS", "16:00-25:00", "hour"),
    ("NIGHTTALK_NIGHT_TALK_HOURS", "16:00-24:30", "24:00"),
    ("NIGHTTALK_NIGHT_TALK_HOURS", "16:00", "HH:MM-HH:MM"),
    ("NIGHTTALK_NIGHT_TALK_HOURS", "4pm-11pm", "HH:MM-HH:MM"),
    ("NIGHTTALK_NIGHT_TALK_HOURS", "23:00-16:00", "after"),
    ("NIGHTTALK_NIGHT_TALK_HOURS", "16:00-00:00", "24:00"),
    ("NIGHTTALK_NIGHT_TALK_DAY", "30", "1 to 28"),
    ("NIGHTTALK_NIGHT_TALK_DAY", "0", "1 to 28"),
    ("NIGHTTALK_NIGHT_TALK_DAY", "fifteen", "1 to 28"),
    ("NIGHTTALK_TIMEZONE", "Asia/Beijing", "Asia/Shanghai"),
    ("NIGHTTALK_TIMEZONE", "../../etc/passwd", "Asia/Shanghai"),
]


@pytest.mark.parametrize("name, value, hint", BAD_SETTINGS)
def test_a_bad_setting_stops_the_api_at_start_naming_it(
    monkeypatch, database_url, amqp_url, name, value, hint
):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError) as refused:
        create_app({"TESTING": True, "DATABASE_URL": database_url, "AMQP_URL": amqp_url})
    message = str(refused.value)
    assert f"{name}={value!r}" in message and hint in message, message


@pytest.mark.parametrize(
    "name", ["NIGHTTALK_NIGHT_TALK_HOURS", "NIGHTTALK_NIGHT_TALK_DAY", "NIGHTTALK_TIMEZONE"]
)
def test_an_empty_setting_means_the_default(monkeypatch, database_url, amqp_url, name):
    monkeypatch.setenv(name, " ")
    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "AMQP_URL": amqp_url})
    try:
        listed = app.test_client().get(
            "/v1/sessions?from=2026-11-01T00:00:00%2B08:00&to=2026-12-01T00:00:00%2B08:00",
            headers=auth_header(),
        )
    finally:
        app.extensions["runtime"].close()
    assert listed.status_code == 200
    assert [(i["opens_at"], i["closes_at"]) for i in listed.get_json()["items"]] == [
        ("2026-11-15T16:00:00+08:00", "2026-11-15T23:00:00+08:00")
    ]


def auth_header():
    from servicekit import auth

    return {"Authorization": f"Bearer {auth.mint('city-org', ['reception'])}"}


@pytest.fixture
def until_midnight(monkeypatch, database_url, amqp_url):
    monkeypatch.setenv("NIGHTTALK_NIGHT_TALK_HOURS", "16:00-24:00")
    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "AMQP_URL": amqp_url})
    yield app.test_client()
    app.extensions["runtime"].close()


@pytest.mark.parametrize(
    "received_at, status",
    [
        ("2026-11-15T15:59:59+08:00", 422),
        ("2026-11-15T16:00:00+08:00", 201),
        ("2026-11-15T23:59:59+08:00", 201),
        ("2026-11-16T00:00:00+08:00", 201),  # 24:00 itself: both ends are included
        ("2026-11-16T00:00:01+08:00", 422),
    ],
)
def test_night_talk_hours_may_end_at_midnight(until_midnight, visit_body, received_at, status):
    body = copy.deepcopy(visit_body)
    body["received_at"] = received_at
    r = until_midnight.post("/v1/visits", json=body, headers=auth_header())
    assert r.status_code == status, r.get_json()
    if status == 422:
        assert "16:00–24:00" in r.get_json()["errors"]["json"]["received_at"][0]


def test_the_sessions_list_shows_a_window_ending_at_midnight(until_midnight):
    listed = until_midnight.get(
        "/v1/sessions?from=2026-11-01T00:00:00%2B08:00&to=2026-12-01T00:00:00%2B08:00",
        headers=auth_header(),
    )
    assert [(i["opens_at"], i["closes_at"]) for i in listed.get_json()["items"]] == [
        ("2026-11-15T16:00:00+08:00", "2026-11-16T00:00:00+08:00")
    ]


@pytest.mark.parametrize("command", [["relay"], ["consume"], ["api", "--host", "127.0.0.1"]])
@pytest.mark.parametrize(
    "name, value",
    [("NIGHTTALK_TIMEZONE", "Asia/Beijing"), ("NIGHTTALK_NIGHT_TALK_HOURS", "16:00-25:00")],
)
def test_a_bad_setting_stops_intakes_processes_at_start(
    database_url, amqp_url, tmp_path: Path, command, name, value
):
    ended = start_refused(
        "intake",
        command,
        database_url=database_url,
        amqp_url=amqp_url,
        var_dir=tmp_path,
        **{name: value},
    )
    assert ended.returncode != 0
    assert f"{name}={value!r}" in ended.stderr, ended.stderr[-2000:]
