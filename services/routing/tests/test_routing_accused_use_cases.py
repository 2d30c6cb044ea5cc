"""Through the use cases: a complaint is arbitrated, and its extensions decided, outside
the accused subtree; a complaint about the city returned by the discipline commission
goes to arbitration instead of straight back to it."""

from __future__ import annotations

import json

from sqlalchemy import select

from routing import models
from servicekit.auth import mint


def bearer(unit: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(unit, list(roles), sub=f'{unit}:clerk')}"}


def events(runtime) -> list[tuple[str, dict]]:
    table = models.metadata.tables["outbox"]
    with runtime.engine.connect() as conn:
        rows = conn.execute(
            select(table).where(table.c.exchange == "nighttalk.events").order_by(table.c.position)
        )
        return [(row.routing_key, json.loads(row.body)) for row in rows]


def assignments(runtime, case_id: str) -> list[models.Assignment]:
    with runtime.sessions() as session:
        rows = session.scalars(
            select(models.Assignment)
            .where(models.Assignment.case_id == case_id)
            .order_by(models.Assignment.routed_at)
        ).all()
        for row in rows:
            session.expunge(row)
        return rows


def test_a_complaint_about_the_city_office_is_decided_by_the_city(
    client, runtime, deliver, case_data, case_registered, monkeypatch
):
    monkeypatch.setenv("ROUTING_MAX_MOVES", "0")
    data = case_data(
        accused={"unit": "city-gov-office", "person": "张某"},
        disposition={"action": "sign_over", "unit": "city-police"},
    )
    deliver(case_registered(data))
    [complaint] = assignments(runtime, data["case_id"])
    police = bearer("city-police", "partner")
    city = bearer("city", "supervisor")

    asked = client.post(
        f"/v1/assignments/{complaint.id}/extension",
        headers=police,
        json={"days": 60, "reason": "需调查"},
    )
    assert asked.get_json()["assignment"]["supervising_unit"] == "city"
    decided = client.post(
        f"/v1/assignments/{complaint.id}/extension/decision",
        headers=city,
        json={"grant": False, "reason": "不同意"},
    )
    assert decided.status_code == 200, decided.get_json()

    moved = client.post(
        f"/v1/assignments/{complaint.id}/transfer",
        headers=police,
        json={"to_unit": "city-land", "reason": "不归我们"},
    )
    assert moved.get_json()["status"] == "arbitration"
    assert moved.get_json()["supervising_unit"] == "city"
    key, event = events(runtime)[-1]
    assert key == "assignment.arbitration_requested" and event["supervising_unit"] == "city"
    arbitrated = client.post(
        f"/v1/assignments/{complaint.id}/arbitration",
        headers=city,
        json={"unit": "city-land", "reason": "交国土"},
    )
    assert arbitrated.status_code == 200, arbitrated.get_json()
    assert assignments(runtime, data["case_id"])[-1].unit == "city-land"


def test_a_complaint_about_the_city_returned_by_the_commission_is_arbitrated(
    client, runtime, deliver, case_data, case_registered
):
    data = case_data(accused={"unit": "city", "person": None}, disposition={"action": "route"})
    deliver(case_registered(data))
    [complaint] = assignments(runtime, data["case_id"])
    assert complaint.unit == "city-discipline"
    # The first return, well within ROUTING_MAX_MOVES: no other unit may take it.
    moved = client.post(
        f"/v1/assignments/{complaint.id}/return",
        headers=bearer("city-discipline", "partner"),
        json={"reason": "请上级另行安排"},
    )
    assert moved.status_code == 200
    body = moved.get_json()
    assert (body["status"], body["supervising_unit"]) == ("arbitration", "city-discipline")
    assert len(assignments(runtime, data["case_id"])) == 1
    # The commission's supervisor (its leadership) decides, and may only keep it.
    leader = bearer("city-discipline", "supervisor")
    refused = client.post(
        f"/v1/assignments/{complaint.id}/arbitration",
        headers=leader,
        json={"unit": "city-gov-office", "reason": "x"},
    )
    assert refused.status_code == 409
    kept = client.post(
        f"/v1/assignments/{complaint.id}/arbitration",
        headers=leader,
        json={"unit": "city-discipline", "reason": "纪委受理"},
    )
    assert kept.status_code == 200, kept.get_json()
    current = assignments(runtime, data["case_id"])[-1]
    assert (current.unit, current.status) == ("city-discipline", "assigned")
