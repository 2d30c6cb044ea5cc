"""The visitor's answer on a case answered on the spot (当场答复): recorded, counted, acted on.

Notify asks the visitor for satisfaction after ``case.resolved_on_spot`` as after a unit's
answer. Satisfied closes the case; unsatisfied reopens it, and since routing never had it
(no unit was assigned), the case stays on the board, reopened, with no responsible unit,
under the unit that received it.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import text
from supervision_samples import (
    ADMIN,
    CST,
    RECEIVED_AT,
    bearer,
    case_registered,
    case_resolved_on_spot,
    consume,
    new_case,
    unit_changed,
)

from supervision import models, usecases

ANSWERED_AT = dt.datetime(2026, 12, 16, 10, 0, tzinfo=CST)


def outbox(rt, routing_key: str) -> list[dict]:
    with rt.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT body FROM outbox WHERE routing_key = :k ORDER BY position"),
            {"k": routing_key},
        ).all()
    return [json.loads(body) for (body,) in rows]


@pytest.fixture
def on_spot(rt, monkeypatch):
    """A case city-org answered on the spot on 15 December; answers are given on the 16th."""
    case_id, number = new_case()
    consume(rt, case_registered(case_id, number, status="resolved_on_spot"))
    consume(rt, case_resolved_on_spot(case_id, number))
    monkeypatch.setattr(usecases, "now", lambda: ANSWERED_AT)
    return case_id, number


def december(client) -> dict:
    response = client.get("/v1/stats?from=2026-12-01&to=2026-12-31", headers=ADMIN)
    assert response.status_code == 200, response.json
    return response.json["totals"]


def board(client) -> list[dict]:
    response = client.get("/v1/board", headers=ADMIN)
    assert response.status_code == 200, response.json
    return response.json["items"]


def test_a_satisfied_answer_closes_a_case_answered_on_the_spot(client, rt, on_spot):
    case_id, number = on_spot

    response = client.post(
        f"/v1/cases/{number}/feedback",
        headers=bearer("city-org", "reception"),
        json={"satisfied": True},
    )

    assert response.status_code == 200, response.json
    assert response.json == {"case_number": number, "status": "closed", "outcome": "satisfied"}
    [closed] = outbox(rt, "case.closed")
    assert (closed["case_id"], closed["outcome"]) == (case_id, "satisfied")
    totals = december(client)
    # Still answered on the spot at the first contact, now with its visitor's word.
    assert (totals["issues"], totals["resolved"], totals["resolved_on_spot"]) == (1, 1, 1)
    assert totals["first_contact_resolution_rate"] == 1.0
    assert (totals["feedback_answers"], totals["satisfied"], totals["satisfaction_rate"]) == (
        1,
        1,
        1.0,
    )


def test_an_unsatisfied_answer_reopens_it_and_lists_it_for_supervision(client, rt, on_spot):
    case_id, number = on_spot

    response = client.post(
        f"/v1/cases/{number}/feedback",
        headers=bearer("city-org", "reception"),
        json={"satisfied": False, "comment": "其实没补发"},
    )

    assert response.status_code == 200, response.json
    assert response.json == {"case_number": number, "status": "reopened", "outcome": None}
    # Announced for routing with the unit that answered it: the one that received it.
    [reopened] = outbox(rt, "case.reopened")
    assert (reopened["case_id"], reopened["unit"], reopened["reason"]) == (
        case_id,
        "city-org",
        "其实没补发",
    )
    [listed] = [item for item in board(client) if item["case_number"] == number]
    assert (listed["status"], listed["responsible_unit"], listed["receiving_unit"]) == (
        models.REOPENED,
        None,
        "city-org",
    )
    assert listed["due_at"] is None
    totals = december(client)
    # The rejected answer is no longer a resolution on the spot; the answer counts.
    assert (totals["issues"], totals["resolved"], totals["resolved_on_spot"]) == (1, 0, 0)
    assert (totals["feedback_answers"], totals["satisfied"], totals["satisfaction_rate"]) == (
        1,
        0,
        0.0,
    )

    # A late copy of the answer on the spot (another event id) leaves it reopened.
    consume(rt, case_resolved_on_spot(case_id, number, resolved_at=RECEIVED_AT.isoformat()))
    consume(rt, case_registered(case_id, number, status="resolved_on_spot"))
    with rt.sessions() as session:
        case = session.get(models.SupervisedCase, case_id)
        assert (case.status, case.answered_on_spot) == (models.REOPENED, False)
    assert december(client)["resolved_on_spot"] == 0


def test_the_unit_that_answered_on_the_spot_does_not_grade_its_own_answer(
    client, rt, directory, on_spot
):
    _, number = on_spot
    consume(rt, unit_changed("city-org", parent="city", leader="部长", level="city"))

    response = client.post(
        f"/v1/cases/{number}/feedback",
        headers=bearer("city-org", "supervisor"),
        json={"satisfied": True},
    )

    assert response.status_code == 403, response.json
    assert outbox(rt, "case.closed") == []
