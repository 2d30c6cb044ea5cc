"""An assignment is due one calendar month after routing on the programme's calendar
(``NIGHTTALK_TIMEZONE``, Asia/Shanghai by default), not on UTC's."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from routing import rules, usecases
from routing.app import create_app
from servicekit.testing import start_refused

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture(autouse=True)
def _programme_zone(monkeypatch):
    monkeypatch.delenv("NIGHTTALK_TIMEZONE", raising=False)


@pytest.mark.parametrize(
    ("routed_at", "due_at"),
    [
        # 1 March 07:00 in Zhangzhou is still 28 February in UTC: due 1 April, not 29 March.
        ("2027-03-01T07:00:00+08:00", "2027-04-01T07:00:00+08:00"),
        # The last day of a local month, before 08:00: due on the last day of the next.
        ("2027-01-31T02:00:00+08:00", "2027-02-28T02:00:00+08:00"),
        ("2026-12-31T06:30:00+08:00", "2027-01-31T06:30:00+08:00"),
        # Given in UTC, counted on the local calendar all the same.
        ("2026-11-30T16:00:00+00:00", "2027-01-01T00:00:00+08:00"),
    ],
)
def test_the_month_is_counted_on_the_local_calendar(routed_at, due_at):
    due = rules.due_date(dt.datetime.fromisoformat(routed_at))
    assert due == dt.datetime.fromisoformat(due_at)
    # Stored and published in UTC, as every instant.
    assert due.utcoffset() == dt.timedelta(0)


def test_the_zone_is_the_programmes(monkeypatch):
    routed_at = dt.datetime(2027, 3, 1, 7, 0, tzinfo=SHANGHAI)
    monkeypatch.setenv("NIGHTTALK_TIMEZONE", "UTC")
    assert rules.due_date(routed_at) == dt.datetime(2027, 3, 28, 23, 0, tzinfo=dt.UTC)
    monkeypatch.setenv("NIGHTTALK_TIMEZONE", "Asia/Shanghai")
    assert rules.due_date(routed_at) == dt.datetime(2027, 3, 31, 23, 0, tzinfo=dt.UTC)


def test_a_rules_days_are_counted_from_the_routing_instant():
    routed_at = dt.datetime(2027, 3, 1, 7, 0, tzinfo=SHANGHAI)
    assert rules.due_date(routed_at, 10) == dt.datetime(2027, 3, 11, 7, 0, tzinfo=SHANGHAI)


def test_a_case_routed_early_on_the_first_of_a_month_is_due_on_the_first_of_the_next(
    runtime, case_data
):
    routed_at = dt.datetime(2027, 3, 1, 7, 0, tzinfo=SHANGHAI)
    with runtime.unit_of_work() as uow:
        assignment = usecases.route_case(
            uow, case_data(), default_unit="city-gov-office", now=routed_at
        )
        uow.commit()
        due = assignment.due_at
    assert due.astimezone(SHANGHAI) == dt.datetime(2027, 4, 1, 7, 0, tzinfo=SHANGHAI)


def test_a_time_zone_the_database_does_not_know_stops_the_api_at_start(
    monkeypatch, database, amqp_url
):
    monkeypatch.setenv("NIGHTTALK_TIMEZONE", "Asia/Beijing")
    with pytest.raises(ValueError, match="NIGHTTALK_TIMEZONE='Asia/Beijing'"):
        create_app({"DATABASE_URL": database, "AMQP_URL": amqp_url, "TESTING": True})


@pytest.mark.parametrize("command", [["consume"], ["relay"], ["api", "--host", "127.0.0.1"]])
def test_a_time_zone_the_database_does_not_know_stops_routings_processes(
    database, amqp_url, tmp_path: Path, command
):
    ended = start_refused(
        "routing",
        command,
        database_url=database,
        amqp_url=amqp_url,
        var_dir=tmp_path,
        NIGHTTALK_TIMEZONE="Asia/Beijing",
    )
    assert ended.returncode != 0
    assert "NIGHTTALK_TIMEZONE='Asia/Beijing'" in ended.stderr, ended.stderr[-2000:]
