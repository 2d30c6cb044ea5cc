"""Supervision counts months and days on the programme's calendar (``NIGHTTALK_TIMEZONE``),
not on a fixed UTC+8: a city in New York (daylight saving) or Paris has its deadlines,
meeting months, statistics months and cadre periods on its own calendar.

Daylight saving in New York in 2027: from 14 March (UTC-5 → UTC-4) to 7 November.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from supervision_samples import (
    ADMIN,
    NO_BROKER,
    bearer,
    case_registered,
    case_routed,
    consume,
    new_case,
    visit_registered,
)

from servicekit.runtime import make_runtime
from servicekit.testing import start_refused
from supervision import ladder, models
from supervision.app import create_app

NEW_YORK = ZoneInfo("America/New_York")
SECOND = dt.timedelta(seconds=1)


@pytest.fixture
def new_york(monkeypatch):
    """Run the programme on New York's calendar."""
    monkeypatch.setenv("NIGHTTALK_TIMEZONE", "America/New_York")


@pytest.fixture
def ladder_runtime(database_url):
    """Yield a runtime whose events stay in the outbox (no broker: see conftest)."""
    runtime = make_runtime("supervision", models.metadata, database_url, NO_BROKER)
    yield runtime
    runtime.close()


def local(*args) -> dt.datetime:
    """Return a wall-clock instant in New York."""
    return dt.datetime(*args, tzinfo=NEW_YORK)


def route(runtime, unit: str = "lw-buwen", *, due: dt.datetime, received_at=None, **extra):
    """Register and route a case due at ``due``; return (case id, case number)."""
    case_id, number = new_case()
    overrides = dict(extra)
    if received_at is not None:
        overrides["received_at"] = received_at.isoformat()
    consume(runtime, case_registered(case_id, number, **overrides))
    consume(
        runtime,
        case_routed(
            case_id,
            number,
            unit=unit,
            routed_at=due - dt.timedelta(days=30),
            due_at=due,
            assignment_id=str(uuid.uuid4()),
        ),
    )
    return case_id, number


# -- the ladder's months and days ------------------------------------------------------------


def test_a_month_is_counted_on_the_programmes_calendar(new_york):
    # 09:00 stays 09:00 across the change to summer time (14:00 UTC, then 13:00 UTC).
    assert ladder.add_months(local(2027, 2, 15, 9, 0), 1) == local(2027, 3, 15, 9, 0)
    # 21:00 on 31 January in New York is already 1 February in UTC (and at UTC+8).
    assert ladder.add_months(local(2027, 1, 31, 21, 0), 1) == local(2027, 2, 28, 21, 0)
    # Back to winter time, 3 months on.
    assert ladder.add_months(local(2027, 8, 31, 23, 30), 3) == local(2027, 11, 30, 23, 30)
    assert ladder.add_months(local(2027, 2, 15, 9, 0), 1).utcoffset() == dt.timedelta(0)


def test_a_steps_days_are_local_days_across_daylight_saving(new_york):
    step = models.LadderStep(step="reminder", event="warning", months_after_due=0)
    step.days_after_due = 10
    due = local(2027, 3, 10, 9, 0)
    assert ladder.fire_at(step, due - dt.timedelta(days=30), due) == local(2027, 3, 20, 9, 0)


def test_a_case_due_in_new_york_is_listed_one_local_month_after_its_due_date(
    new_york, ladder_runtime
):
    due = local(2027, 2, 15, 9, 0)
    one_month = local(2027, 3, 15, 9, 0)  # summer time: an hour earlier in UTC than 14:00
    case_id, _ = route(ladder_runtime, due=due)

    assert ladder.sweep(ladder_runtime, due).fired == {"warning": 1, "overdue": 1}
    assert ladder.sweep(ladder_runtime, one_month - SECOND).total == 0
    assert ladder.sweep(ladder_runtime, one_month).fired == {"unit-leader": 1}
    with ladder_runtime.sessions() as session:
        case = session.get(models.SupervisedCase, case_id)
        assert case.escalated_level_1_at == one_month


# -- the statistics' months and periods ------------------------------------------------------


def register_with_visit(rt, at: dt.datetime) -> str:
    case_id, number = new_case("city-org")
    consume(rt, case_registered(case_id, number, received_at=at.isoformat()))
    consume(
        rt,
        visit_registered(
            str(uuid.uuid4()), [case_id], received_at=at.isoformat(), headcount=1, follow_ups=[]
        ),
    )
    return case_id


def test_statistics_months_are_the_programmes_months(new_york, client, rt, directory):
    register_with_visit(rt, local(2027, 3, 31, 23, 30))  # 1 April in UTC, summer time
    register_with_visit(rt, local(2027, 4, 1, 0, 30))
    register_with_visit(rt, local(2027, 10, 31, 23, 30))  # 1 November in UTC, summer time
    register_with_visit(rt, local(2027, 11, 30, 23, 30))  # 1 December in UTC, winter time
    register_with_visit(rt, local(2027, 12, 1, 0, 30))  # after the period

    response = client.get("/v1/stats?from=2027-03-01&to=2027-11-30&by=month", headers=ADMIN)

    assert response.status_code == 200, response.json
    rows = {row["group"]: (row["batches"], row["issues"]) for row in response.json["rows"]}
    assert rows == {
        "2027-03": (1, 1),
        "2027-04": (1, 1),
        "2027-10": (1, 1),
        "2027-11": (1, 1),
    }
    assert (response.json["totals"]["batches"], response.json["totals"]["issues"]) == (4, 4)
    assert response.json["from"] == local(2027, 3, 1).astimezone(dt.UTC).isoformat()
    assert response.json["to"] == local(2027, 12, 1).astimezone(dt.UTC).isoformat()


def test_a_statistics_period_is_of_the_programmes_days(new_york, client, rt, directory):
    register_with_visit(rt, local(2027, 3, 31, 23, 30))

    march = client.get("/v1/stats?from=2027-03-31&to=2027-03-31&by=unit", headers=ADMIN)
    april = client.get("/v1/stats?from=2027-04-01&to=2027-04-01&by=unit", headers=ADMIN)

    assert march.json["totals"]["issues"] == march.json["totals"]["batches"] == 1
    assert april.json["totals"]["issues"] == april.json["totals"]["batches"] == 0


# -- the joint meeting's month and the cadre feed's period -----------------------------------


def test_the_meetings_month_is_the_programmes_month(new_york, client, rt, directory):
    # Listed for the unit leader at 22:00 on 30 April in New York: 1 May in UTC (and at
    # UTC+8, whose month from 1 April is the same instant).
    _, number = route(rt, due=local(2027, 3, 31, 22, 0))
    ladder.sweep(rt, local(2027, 4, 30, 22, 0))

    april = client.get("/v1/meetings/2027-04/agenda", headers=ADMIN)
    march = client.get("/v1/meetings/2027-03/agenda", headers=ADMIN)

    assert april.status_code == 200, april.json
    assert [c["case_number"] for u in april.json["units"] for c in u["cases"]] == [number]
    assert march.json["units"] == []


def test_the_cadre_feeds_period_is_of_the_programmes_days(new_york, client, rt, directory):
    route(
        rt,
        due=local(2027, 5, 1, 9, 0),
        received_at=local(2027, 3, 31, 23, 30),
        accused={"unit": "lw-buwen", "person": "王某"},
    )
    organisation = bearer("city-org", "supervisor")

    march = client.get("/v1/cadre?from=2027-03-01&to=2027-03-31", headers=organisation)
    april = client.get("/v1/cadre?from=2027-04-01&to=2027-04-30", headers=organisation)

    assert march.status_code == 200, march.json
    assert [r["complaints"] for r in march.json["rows"]] == [1]
    assert april.json["rows"] == []


# -- a zone the database does not know -------------------------------------------------------


def test_a_time_zone_the_database_does_not_know_stops_the_api_at_start(monkeypatch, database_url):
    monkeypatch.setenv("NIGHTTALK_TIMEZONE", "Asia/Beijing")
    with pytest.raises(ValueError, match="NIGHTTALK_TIMEZONE='Asia/Beijing'"):
        create_app({"DATABASE_URL": database_url, "AMQP_URL": NO_BROKER, "TESTING": True})


@pytest.mark.parametrize(
    "command",
    [["consume"], ["relay"], ["api", "--host", "127.0.0.1"], ["sweep"], ["scheduler"]],
)
def test_a_time_zone_the_database_does_not_know_stops_supervisions_processes(
    database_url, amqp_url, tmp_path: Path, command
):
    ended = start_refused(
        "supervision",
        command,
        database_url=database_url,
        amqp_url=amqp_url,
        var_dir=tmp_path,
        NIGHTTALK_TIMEZONE="Asia/Beijing",
    )
    assert ended.returncode != 0
    assert "NIGHTTALK_TIMEZONE='Asia/Beijing'" in ended.stderr, ended.stderr[-2000:]
