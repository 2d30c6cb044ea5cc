"""A past month's joint-meeting agenda reads as it stood at the month's end, not as cases are now.

July 2026 on the city's calendar (all before the tests run, so later changes are real-time):
routed 15 May, due 15 June, listed for the unit's leader on 15 July, for the city's on 15
September.

- ``later``: still open; reached level 2 in September and got a named supervisor today.
- ``after``: resolved on 10 August, after July ended: July's meeting still had it.
- ``within``: resolved on 20 July; the visitor rejected the answer today (reopened).
- ``rerouted``: resolved on 20 July, reopened today and routed again with a new due date.
- ``helped``: a co-operating unit (协办) answered its part on 20 July; the lead unit
  resolved it on 10 August, reopened today.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from supervision_samples import (
    ADMIN,
    CST,
    assignment_event,
    case_registered,
    case_routed,
    consume,
    new_case,
)

from supervision import ladder, usecases

ROUTED = dt.datetime(2026, 5, 15, 9, 0, tzinfo=CST)
DUE = dt.datetime(2026, 6, 15, 9, 0, tzinfo=CST)


def route(rt) -> tuple[str, str, str]:
    case_id, number = new_case()
    assignment_id = str(uuid.uuid4())
    consume(rt, case_registered(case_id, number, received_at=ROUTED.isoformat()))
    consume(
        rt,
        case_routed(case_id, number, routed_at=ROUTED, due_at=DUE, assignment_id=assignment_id),
    )
    return case_id, number, assignment_id


def resolve(rt, case, at: dt.datetime) -> None:
    consume(rt, assignment_event("assignment.resolved", *case, occurred_at=at))


def reject(rt, case_id: str) -> None:
    with rt.unit_of_work() as uow:
        usecases.record_feedback(uow, case_id, satisfied=False, comment=None)
        uow.commit()


@pytest.fixture
def july(client, rt, directory):
    later, after, within, rerouted, helped = (route(rt) for _ in range(5))
    co = (*helped[:2], str(uuid.uuid4()))
    consume(
        rt,
        case_routed(
            *co[:2],
            unit="lw-chaoyang",
            role="co",
            routed_at=ROUTED,
            due_at=DUE,
            assignment_id=co[2],
        ),
    )
    ladder.sweep(rt, dt.datetime(2026, 7, 16, tzinfo=CST))  # all five listed at level 1
    resolve(rt, within, dt.datetime(2026, 7, 20, tzinfo=CST))
    resolve(rt, rerouted, dt.datetime(2026, 7, 20, tzinfo=CST))
    resolve(rt, co, dt.datetime(2026, 7, 20, tzinfo=CST))
    resolve(rt, after, dt.datetime(2026, 8, 10, tzinfo=CST))
    resolve(rt, helped, dt.datetime(2026, 8, 10, tzinfo=CST))
    ladder.sweep(rt, dt.datetime(2026, 9, 16, tzinfo=CST))  # later: level 2
    response = client.put(
        f"/v1/cases/{later[1]}/supervisor",
        headers=ADMIN,
        json={"supervisor": "李副市长", "supervisor_unit": "city"},
    )
    assert response.status_code == 200, response.json
    reject(rt, within[0])
    reject(rt, rerouted[0])
    reject(rt, helped[0])
    now = dt.datetime.now(dt.UTC)
    consume(
        rt,
        case_routed(
            rerouted[0],
            rerouted[1],
            routed_at=now + dt.timedelta(minutes=1),
            due_at=now + dt.timedelta(days=30),
            assignment_id=str(uuid.uuid4()),
        ),
    )
    return {
        "later": later[1],
        "after": after[1],
        "within": within[1],
        "rerouted": rerouted[1],
        "helped": helped[1],
    }


def agenda(client, month: str) -> dict[str, dict]:
    response = client.get(f"/v1/meetings/{month}/agenda", headers=ADMIN)
    assert response.status_code == 200, response.json
    return {c["case_number"]: c for unit in response.json["units"] for c in unit["cases"]}


def test_a_past_months_agenda_keeps_the_cases_unresolved_at_its_end(client, july):
    cases = agenda(client, "2026-07")

    # Resolved in August: unresolved when July ended, so on July's agenda (a co-operating
    # unit's answer in July did not resolve it); resolved in July and reopened only since:
    # not on it, whatever became of them afterwards.
    assert sorted(cases) == sorted([july["later"], july["after"], july["helped"]])
    assert [c["case_number"] for c in agenda(client, "2026-08").values()] == [july["later"]]


def test_a_past_months_agenda_shows_the_level_reached_by_its_end(client, july):
    assert agenda(client, "2026-07")[july["later"]]["level"] == "1"
    assert agenda(client, "2026-07")[july["later"]]["major_supervisor"] is None
    assert agenda(client, "2026-09")[july["later"]]["level"] == "2"
    this_month = dt.datetime.now(CST).strftime("%Y-%m")
    now = agenda(client, this_month)[july["later"]]
    assert (now["level"], now["major_supervisor"]) == ("major", "李副市长")


def test_a_co_handlers_answer_marked_co_is_not_the_cases_on_a_past_agenda(client, rt, directory):
    # Routing marks the co-operating unit's answer role co; its case.routed never came here.
    case = route(rt)
    ladder.sweep(rt, dt.datetime(2026, 7, 16, tzinfo=CST))
    consume(
        rt,
        assignment_event(
            "assignment.resolved",
            case[0],
            case[1],
            str(uuid.uuid4()),
            unit="lw-chaoyang",
            role="co",
            occurred_at=dt.datetime(2026, 7, 20, tzinfo=CST),
        ),
    )
    resolve(rt, case, dt.datetime(2026, 8, 10, tzinfo=CST))
    reject(rt, case[0])

    assert case[1] in agenda(client, "2026-07")
