"""Statistics of a month registered through intake's own API, its events fed to supervision.

Intake runs in-process on its own database; the events its visits committed to its outbox
are decoded as the consumer decodes them and applied by supervision's handlers. November
2026 on the city's calendar:

- city-org, night-talk day (15 Nov): a batch of 5 raising two issues (one answered on the
  spot, one routed and resolved on time, the visitor satisfied), and a batch of 2 raising
  nothing new (a follow-up of the routed case);
- lw-org: a daily batch of 1 on 20 Nov raising one issue (routed, never resolved, due
  25 Nov), and a letter of 3 on 1 Nov at 00:30 in the city (31 Oct in UTC) raising one;
- outside the period: a city-org batch of 4 on 31 Oct at 20:00 in the city.
"""

from __future__ import annotations

import copy
import datetime as dt
import uuid

import pika
import pytest
from sqlalchemy import select
from supervision_samples import (
    ADMIN,
    CST,
    NO_BROKER,
    assignment_event,
    case_routed,
    consume,
    consume_received,
)

from eventbus import envelope
from intake.app import create_app as create_intake_app
from servicekit import auth, migrations
from supervision import usecases
from supervision.handlers import handlers

VISITOR = {"name": "林河清", "phone": "13905961234", "address": "郭坑镇"}


@pytest.fixture
def intake(make_database):
    url = make_database("intake")
    migrations.upgrade("intake", "intake", url)
    app = create_intake_app({"TESTING": True, "DATABASE_URL": url, "AMQP_URL": NO_BROKER})
    yield app
    app.extensions["runtime"].close()


def register(intake, unit: str, channel: str, at: str, headcount: int, issues, follow_ups=()):
    body = {
        "channel": channel,
        "received_at": at,
        "headcount": headcount,
        "visitor": copy.deepcopy(VISITOR),
        "issues": issues,
        "follow_ups": list(follow_ups),
    }
    headers = {"Authorization": f"Bearer {auth.mint(unit, ['reception'])}"}
    response = intake.test_client().post("/v1/visits", json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def intake_events(intake):
    """Return the events intake committed, decoded as supervision's consumer receives them."""
    box = intake.extensions["runtime"].outbox.table
    with intake.extensions["runtime"].engine.connect() as conn:
        rows = conn.execute(
            select(box.c.routing_key, box.c.headers, box.c.body).order_by(box.c.position)
        ).all()
    return [
        envelope.decode(
            pika.BasicProperties(headers=dict(headers), content_type="application/json"),
            bytes(body),
            key,
        )
        for key, headers, body in rows
    ]


def issue(category: str, action: str = "route", **extra):
    disposition = {"action": action}
    if action == "resolved_on_spot":
        disposition["answer"] = "当场答复"
    return {"category": category, "summary": "诉求", "disposition": disposition, **extra}


def case_numbers(visit) -> list[tuple[str, str]]:
    return [(c["case_id"], c["case_number"]) for c in visit["cases"]]


def test_the_figures_of_a_month_registered_through_intake(intake, rt, client, monkeypatch):
    first = register(
        intake,
        "city-org",
        "night_talk",
        "2026-11-15T17:05:00+08:00",
        5,
        [
            issue("wage_arrears", "resolved_on_spot"),
            issue("demolition_compensation", accused={"unit": "lw-buwen"}),
        ],
    )
    [(_, _), (routed_id, routed_number)] = case_numbers(first)
    register(intake, "city-org", "night_talk", "2026-11-15T18:00:00+08:00", 2, [], [routed_number])
    late = register(intake, "lw-org", "daily", "2026-11-20T10:00:00+08:00", 1, [issue("land")])
    register(intake, "lw-org", "letter", "2026-11-01T00:30:00+08:00", 3, [issue("retired_cadres")])
    register(intake, "city-org", "daily", "2026-10-31T20:00:00+08:00", 4, [issue("policing")])

    applied = handlers()
    for event in intake_events(intake):
        if event.routing_key in applied:
            consume_received(rt, event)

    # Routing's part: the demolition case resolved on time, the land case never.
    assignment = str(uuid.uuid4())
    routed_at = dt.datetime(2026, 11, 16, 9, 0, tzinfo=CST)
    consume_event = [
        case_routed(
            routed_id,
            routed_number,
            routed_at=routed_at,
            due_at=dt.datetime(2026, 12, 16, 9, 0, tzinfo=CST),
            assignment_id=assignment,
        ),
        assignment_event(
            "assignment.resolved",
            routed_id,
            routed_number,
            assignment,
            occurred_at=dt.datetime(2026, 11, 25, 9, 0, tzinfo=CST),
        ),
    ]
    [(land_id, land_number)] = case_numbers(late)
    consume_event.append(
        case_routed(
            land_id,
            land_number,
            receiving_unit="lw-org",
            routed_at=routed_at,
            due_at=dt.datetime(2026, 11, 25, 9, 0, tzinfo=CST),
        )
    )
    for event in consume_event:
        consume(rt, event)
    # The visitor's answer, given in November: counted in November's figures.
    monkeypatch.setattr(usecases, "now", lambda: dt.datetime(2026, 11, 26, 10, 0, tzinfo=CST))
    with rt.unit_of_work() as uow:
        usecases.record_feedback(uow, routed_id, satisfied=True, comment=None)
        uow.commit()

    response = client.get("/v1/stats?from=2026-11-01&to=2026-11-30&by=unit", headers=ADMIN)

    assert response.status_code == 200, response.json
    zero = dict.fromkeys(("escalated_level_1", "escalated_level_2", "escalated_major"), 0)
    assert response.json["rows"] == [
        {
            "group": "city-org",
            "batches": 2,
            "person_visits": 7,
            "follow_up_visits": 1,
            "issues": 2,
            "resolved": 2,
            "resolved_on_spot": 1,
            "resolved_on_time": 1,
            "overdue_open": 0,
            **zero,
            "repeat_visits": 0,
            "feedback_answers": 1,
            "satisfied": 1,
            "satisfaction_rate": 1.0,
            "first_contact_resolution_rate": 0.5,
        },
        {
            "group": "lw-org",
            "batches": 2,
            "person_visits": 4,
            "follow_up_visits": 0,
            "issues": 2,
            "resolved": 0,
            "resolved_on_spot": 0,
            "resolved_on_time": 0,
            "overdue_open": 1,
            **zero,
            "repeat_visits": 0,
            "feedback_answers": 0,
            "satisfied": 0,
            "satisfaction_rate": None,
            "first_contact_resolution_rate": 0.0,
        },
    ]
    totals = response.json["totals"]
    assert (totals["batches"], totals["person_visits"], totals["issues"]) == (4, 11, 4)
    assert (totals["resolved"], totals["resolved_on_spot"], totals["overdue_open"]) == (2, 1, 1)
    assert totals["first_contact_resolution_rate"] == 0.25
