"""Notify on the programme's clock: message dates and quiet hours follow NIGHTTALK_TIMEZONE."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from notify_sample_events import Visit

from notify import models
from notify.app import create_app
from notify.delivery import Settings, quiet_until
from servicekit.testing import start_refused

NEW_YORK = ZoneInfo("America/New_York")
# 03:00 UTC on 1 March: 11:00 that day in Shanghai, still 22:00 on 28 February in New York.
DUE = dt.datetime(2027, 3, 1, 3, 0, tzinfo=dt.UTC)
NO_QUIET_HOURS = {"quiet_start": dt.time(0), "quiet_end": dt.time(0)}


@pytest.mark.parametrize(
    ("zone", "day"), [(None, "2027-03-01"), ("America/New_York", "2027-02-28")]
)
def test_the_visitors_receipt_gives_the_due_date_on_the_programmes_calendar(
    monkeypatch, deliver, make_worker, gateway, zone, day
):
    if zone is None:
        monkeypatch.delenv("NIGHTTALK_TIMEZONE", raising=False)
    else:
        monkeypatch.setenv("NIGHTTALK_TIMEZONE", zone)
    visit = Visit()
    visit.due_at = DUE
    deliver(visit.case_registered())
    deliver(visit.contact_recorded())

    make_worker(**NO_QUIET_HOURS).drain()

    (receipt,) = [r.json()["text"] for r in gateway.requests]
    assert f"我们将在{day}前答复您" in receipt, receipt


def sms() -> models.Notification:
    return models.Notification(
        kind=models.ANSWER, channel=models.SMS, recipient_kind=models.VISITOR, payload={}
    )


def new_york(hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, 15, hour, minute, tzinfo=NEW_YORK)


@pytest.mark.parametrize("unset", ["absent", "empty"])
def test_quiet_hours_follow_the_programmes_time_zone_unless_notify_names_its_own(
    monkeypatch, unset
):
    monkeypatch.setenv("NIGHTTALK_TIMEZONE", "America/New_York")
    if unset == "absent":
        monkeypatch.delenv("NIGHTTALK_NOTIFY_TIMEZONE", raising=False)
    else:
        monkeypatch.setenv("NIGHTTALK_NOTIFY_TIMEZONE", "")  # compose's ${...:-}
    for settings in (Settings.from_env(), Settings()):
        # 23:30 in New York (12:30 in Shanghai): the visitor's night.
        wake = quiet_until(settings, new_york(23, 30), sms())
        assert wake is not None
        assert wake.astimezone(NEW_YORK) == new_york(8, 0) + dt.timedelta(days=1)
        # Noon in New York (01:00 in Shanghai): the visitor's day.
        assert quiet_until(settings, new_york(12), sms()) is None

    monkeypatch.setenv("NIGHTTALK_NOTIFY_TIMEZONE", "Asia/Shanghai")
    overridden = Settings.from_env()
    assert quiet_until(overridden, new_york(23, 30), sms()) is None
    assert quiet_until(overridden, new_york(12), sms()) is not None


BAD_ZONES = [
    ("NIGHTTALK_TIMEZONE", "Asia/Beijing"),
    ("NIGHTTALK_NOTIFY_TIMEZONE", "Asia/Beijing"),
]


@pytest.mark.parametrize(("variable", "value"), BAD_ZONES)
def test_a_time_zone_the_database_does_not_know_stops_the_api_at_start(
    monkeypatch, database_url, variable, value
):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=f"{variable}='{value}'"):
        create_app({"DATABASE_URL": database_url, "TESTING": True})


@pytest.mark.parametrize(("variable", "value"), BAD_ZONES)
@pytest.mark.parametrize(
    "command",
    [["consume"], ["relay"], ["deliver"], ["api", "--host", "127.0.0.1"]],
    ids=["consume", "relay", "deliver", "api"],
)
def test_a_time_zone_the_database_does_not_know_stops_notifys_processes(
    database_url, amqp_url, tmp_path: Path, command, variable, value
):
    ended = start_refused(
        "notify",
        command,
        database_url=database_url,
        amqp_url=amqp_url,
        var_dir=tmp_path,
        **{variable: value},
    )
    assert ended.returncode != 0
    assert f"{variable}='{value}'" in ended.stderr, ended.stderr[-2000:]
