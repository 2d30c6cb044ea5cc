"""An admin's change of the ladder and the clocks already running: the old ladder governs them.

A case routed on 15 November, due on 15 December (the city's calendar): its clock waits on
the unit leader's listing on 15 January (level 1, by the unit's leader) and the city's on
15 March.
"""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import text
from supervision_samples import ADMIN, CST, case_registered, case_routed, consume, new_case

from supervision import ladder

ROUTED = dt.datetime(2026, 11, 15, 9, 0, tzinfo=CST)
DUE = dt.datetime(2026, 12, 15, 9, 0, tzinfo=CST)
ONE_MONTH = dt.datetime(2027, 1, 15, 9, 0, tzinfo=CST)
TWO_MONTHS = dt.datetime(2027, 2, 15, 9, 0, tzinfo=CST)
UNIT_LEADER = {
    "position": 3,
    "event": "escalated",
    "level": 1,
    "months_after_due": 1,
    "supervised_by": "unit",
}


def route(rt) -> str:
    case_id, number = new_case()
    consume(rt, case_registered(case_id, number))
    consume(rt, case_routed(case_id, number, unit="lw-buwen", routed_at=ROUTED, due_at=DUE))
    return case_id


def escalations(rt, case_id: str) -> list[tuple]:
    with rt.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT body FROM outbox WHERE routing_key = 'case.escalated' ORDER BY position")
        ).all()
    events = [json.loads(body) for (body,) in rows]
    return [
        (e["step"], e["level"], e["supervisor_unit"], e["occurred_at"])
        for e in events
        if e["case_id"] == case_id
    ]


def test_what_a_step_publishes_does_not_change_under_a_running_clock(client, rt, directory):
    running = route(rt)

    # The city decides that the first listing is the city's, at level 2: under the step's
    # old name, the running clock would list its case with the city at the old rule's time.
    response = client.put(
        "/v1/ladder/unit-leader",
        headers=ADMIN,
        json={**UNIT_LEADER, "level": 2, "supervised_by": "city"},
    )

    assert response.status_code == 409, response.json
    assert sorted(response.json["errors"]["json"]) == ["level", "supervised_by"]
    assert "new name" in response.json["message"]
    ladder.sweep(rt, ONE_MONTH)
    assert escalations(rt, running) == [
        ("unit-leader", 1, "lw-buwen", ONE_MONTH.astimezone(dt.UTC).isoformat())
    ]


def test_a_step_that_fired_keeps_its_meaning_and_a_new_step_takes_the_new_one(
    client, rt, directory
):
    fired = route(rt)
    ladder.sweep(rt, dt.datetime(2027, 4, 1, tzinfo=CST))  # its clock ran to the end
    refused = client.put("/v1/ladder/unit-leader", headers=ADMIN, json={**UNIT_LEADER, "level": 2})
    assert refused.status_code == 409, refused.json

    # The way the message names: a new step, the old one turned off.
    new_step = {**UNIT_LEADER, "position": 5, "months_after_due": 2, "supervised_by": "city"}
    assert client.put("/v1/ladder/city-listing", headers=ADMIN, json=new_step).status_code == 200
    off = client.put("/v1/ladder/unit-leader", headers=ADMIN, json={**UNIT_LEADER, "active": False})
    assert off.status_code == 200, off.json
    later = route(rt)
    ladder.sweep(rt, TWO_MONTHS)

    assert [step for step, *_ in escalations(rt, fired)] == ["unit-leader", "city-leader"]
    assert escalations(rt, later) == [
        ("city-listing", 1, "city", TWO_MONTHS.astimezone(dt.UTC).isoformat())
    ]


def test_when_a_step_comes_due_may_change_while_clocks_run(client, rt, directory):
    running = route(rt)
    response = client.put(
        "/v1/ladder/unit-leader", headers=ADMIN, json={**UNIT_LEADER, "months_after_due": 2}
    )
    assert response.status_code == 200, response.json
    started_after = route(rt)

    # The running clock keeps the ladder it started with; each clock fires the step once.
    ladder.sweep(rt, ONE_MONTH)
    ladder.sweep(rt, TWO_MONTHS)
    assert [at for *_, at in escalations(rt, running)] == [ONE_MONTH.astimezone(dt.UTC).isoformat()]
    assert [at for *_, at in escalations(rt, started_after)] == [
        TWO_MONTHS.astimezone(dt.UTC).isoformat()
    ]


def test_a_step_no_clock_uses_can_be_redefined(client):
    body = {"position": 5, "event": "warning", "percent_of_term": 50}
    assert client.put("/v1/ladder/reminder", headers=ADMIN, json=body).status_code == 200
    redefined = {"position": 5, "event": "overdue", "days_after_due": 7}
    response = client.put("/v1/ladder/reminder", headers=ADMIN, json=redefined)
    assert response.status_code == 200, response.json
    assert response.json["event"] == "overdue"
