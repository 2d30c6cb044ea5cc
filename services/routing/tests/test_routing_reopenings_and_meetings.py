"""Supervision's decisions at routing: reopenings of retired units' cases, repeated meetings."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import select

from eventbus import envelope
from routing import models
from servicekit.auth import mint


def bearer(unit: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(unit, list(roles), sub=f'{unit}:clerk')}"}


ADMIN = bearer("city-org", "admin")
GUOKENG = bearer("lw-guokeng", "partner")


def supervision_event(routing_key: str, data: dict):
    return envelope.build(
        service="supervision", routing_key=routing_key, subject=data["case_id"], data=data
    )


def reopened(data: dict, unit: str = "lw-guokeng"):
    # A second later than now: after the case's routing, as a real reopening is.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    return supervision_event(
        "case.reopened",
        {
            "case_id": data["case_id"],
            "case_number": data["case_number"],
            "unit": unit,
            "reason": "来访人不满意",
            "occurred_at": later.isoformat(),
        },
    )


def chain(runtime, case_id: str) -> list[models.Assignment]:
    with runtime.sessions() as session:
        rows = list(
            session.scalars(
                select(models.Assignment)
                .where(models.Assignment.case_id == case_id)
                .order_by(models.Assignment.routed_at)
            )
        )
        for row in rows:
            session.expunge(row)
        return rows


def routed(runtime) -> list[dict]:
    table = models.metadata.tables["outbox"]
    with runtime.engine.connect() as conn:
        rows = conn.execute(
            select(table.c.body)
            .where(table.c.exchange == "nighttalk.events", table.c.routing_key == "case.routed")
            .order_by(table.c.position)
        )
        return [json.loads(row.body) for row in rows]


def resolve_over_the_api(client, assignment_id: str) -> None:
    assert (
        client.post(f"/v1/assignments/{assignment_id}/accept", headers=GUOKENG).status_code == 200
    )
    response = client.post(
        f"/v1/assignments/{assignment_id}/resolve", headers=GUOKENG, json={"answer": "已办"}
    )
    assert response.status_code == 200


def test_a_reopened_case_of_a_retired_unit_goes_to_its_supervising_unit(
    client, runtime, deliver, case_data, case_registered
):
    data = case_data()
    deliver(case_registered(data))
    [first] = chain(runtime, data["case_id"])
    resolve_over_the_api(client, first.id)
    # 郭坑镇 is merged away: the admin retires it (no rule names it).
    response = client.patch("/v1/units/lw-guokeng", headers=ADMIN, json={"active": False})
    assert response.status_code == 200

    deliver(reopened(data))

    old, new = chain(runtime, data["case_id"])
    assert new.unit == "lw" and new.status == "assigned"  # 龙文区 governs the township
    assert old.superseded_by == new.id
    assert routed(runtime)[-1]["unit"] == "lw"


def test_a_reopened_case_goes_to_the_default_unit_when_its_county_is_retired_too(
    client, runtime, deliver, case_data, case_registered
):
    data = case_data()
    deliver(case_registered(data))
    [first] = chain(runtime, data["case_id"])
    resolve_over_the_api(client, first.id)
    with runtime.sessions() as session:
        # Retired directly: the API would first ask for the township to be retired too.
        for code in ("lw-guokeng", "lw"):
            session.get(models.Unit, code).active = False
        session.commit()

    deliver(reopened(data, unit="nowhere"))

    assert [a.unit for a in chain(runtime, data["case_id"])] == ["lw-guokeng", "city-gov-office"]


def meeting_reassigns(data: dict, unit: str):
    return supervision_event(
        "meeting.decision_recorded",
        {
            "case_id": data["case_id"],
            "case_number": data["case_number"],
            "month": "2026-12",
            "decision": "reassign",
            "unit": unit,
            "due_at": None,
            "note": "联席会议决定",
        },
    )


def test_a_meeting_reassigning_to_the_accused_unit_twice_reassigns_once(
    runtime, deliver, case_data, case_registered
):
    data = case_data(accused={"unit": "lw-buwen", "person": None})
    deliver(case_registered(data))
    deliver(meeting_reassigns(data, "lw-buwen"))
    # The same decision announced again, under another event id.
    deliver(meeting_reassigns(data, "lw-buwen"))

    rows = chain(runtime, data["case_id"])
    # Redirected from the accused 步文镇 to its superior 龙文区, once.
    assert [a.unit for a in rows] == ["lw-guokeng", "lw"]
    assert [body["unit"] for body in routed(runtime)] == ["lw-guokeng", "lw"]


def test_a_reopened_assignment_is_replaced_not_listed_as_resolved(
    client, runtime, deliver, case_data, case_registered
):
    data = case_data()
    deliver(case_registered(data))
    [first] = chain(runtime, data["case_id"])
    resolve_over_the_api(client, first.id)

    deliver(reopened(data))

    old, new = chain(runtime, data["case_id"])
    assert old.status == "replaced" and old.superseded_by == new.id
    # The rejected answer is kept as history.
    assert old.answer == "已办" and old.resolved_at is not None
    listed = client.get("/v1/assignments?status=resolved", headers=GUOKENG).get_json()
    assert listed["total"] == 0
    listed = client.get("/v1/assignments?status=assigned", headers=GUOKENG).get_json()
    assert [item["assignment_id"] for item in listed["items"]] == [new.id]


def test_a_resolved_assignment_a_meeting_reassigns_is_replaced(
    client, runtime, deliver, case_data, case_registered
):
    data = case_data()
    deliver(case_registered(data))
    [first] = chain(runtime, data["case_id"])
    resolve_over_the_api(client, first.id)

    deliver(meeting_reassigns(data, "city-land"))

    old, new = chain(runtime, data["case_id"])
    assert (old.status, new.unit, new.status) == ("replaced", "city-land", "assigned")
