"""Routing reads every payload its producers accept at their doors, at their longest.

A consumer that refuses what its producer accepted dead-letters the event and loses its
effect (a meeting's reassignment never applied). The limits below are the producers' own:
intake's ``IssueIn``/``AccusedIn`` (services/intake/intake/schemas.py), supervision's
``DecisionIn`` and ``FeedbackIn`` (services/supervision/supervision/schemas.py); the
contract test (tests/contract) reads them from those schemas across the four services.
"""

from __future__ import annotations

import datetime as dt
import json

import jwt
import pytest
from sqlalchemy import select

from eventbus import envelope
from eventbus.envelope import PoisonMessage
from routing import models

# supervision's DecisionIn.note: 1 to 2000 characters.
SUPERVISION_NOTE = 2000
# supervision's FeedbackIn.comment (the reopening's reason): at most 500.
SUPERVISION_COMMENT = 500
# supervision's UNIT_CODE: 64 characters at most (one more than routing's directory holds).
SUPERVISION_UNIT = 64


def supervision_event(routing_key: str, data: dict):
    return envelope.build(
        service="supervision", routing_key=routing_key, subject=data["case_id"], data=data
    )


def assignments(runtime, case_id: str) -> list[models.Assignment]:
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


def outbox(runtime) -> list[tuple[str, str]]:
    table = models.metadata.tables["outbox"]
    with runtime.engine.connect() as conn:
        rows = conn.execute(
            select(table.c.routing_key, table.c.body)
            .where(table.c.exchange == "nighttalk.events")
            .order_by(table.c.position)
        )
        return [(row.routing_key, row.body) for row in rows]


@pytest.fixture
def routed_case(runtime, deliver, case_data, case_registered):
    data = case_data()
    deliver(case_registered(data))
    return data


def decision(case: dict, **changes) -> envelope.OutgoingEvent:
    body = {
        "case_id": case["case_id"],
        "case_number": case["case_number"],
        "month": "2026-12",
        "decision": "reassign",
        "unit": "city-land",
        "note": "议" * SUPERVISION_NOTE,
        "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    body.update(changes)
    return supervision_event("meeting.decision_recorded", body)


def test_a_reassignment_with_the_longest_note_supervision_accepts_is_applied(
    runtime, deliver, routed_case
):
    deliver(decision(routed_case))
    first, second = assignments(runtime, routed_case["case_id"])
    assert (first.status, second.unit, second.status) == ("replaced", "city-land", "assigned")
    # The assignment keeps the start of the note as its reason, within its column.
    assert second.reason.startswith("joint meeting: 议") and len(second.reason) == 200


def test_an_extension_with_the_longest_note_supervision_accepts_is_granted(
    runtime, deliver, routed_case
):
    [assignment] = assignments(runtime, routed_case["case_id"])
    later = assignment.due_at + dt.timedelta(days=30)
    deliver(decision(routed_case, decision="extend", unit=None, due_at=later.isoformat()))
    [extended] = assignments(runtime, routed_case["case_id"])
    assert extended.due_at == later
    key, body = outbox(runtime)[-1]
    data = json.loads(body)
    assert key == "assignment.extension_granted"
    # The note travels whole: supervision, its only consumer bound, reads reasons of 2000.
    assert data["reason"] == "议" * SUPERVISION_NOTE and data["granted_by"] == "joint-meeting"
    assert data["role"] == "lead"


def test_a_reassignment_to_a_unit_code_supervision_allows_is_judged_by_the_directory(
    runtime, deliver, routed_case
):
    # The longest code supervision's schema lets through is not one routing's directory
    # can hold: refused for that (an unknown unit), not as a malformed event.
    with pytest.raises(PoisonMessage, match="unknown or inactive"):
        deliver(decision(routed_case, unit="u" * SUPERVISION_UNIT, note="改派"))
    assert len(assignments(runtime, routed_case["case_id"])) == 1


def test_a_reopening_with_the_longest_comment_supervision_accepts_goes_back(
    runtime, deliver, routed_case
):
    with runtime.sessions() as session:
        row = session.scalars(
            select(models.Assignment).where(models.Assignment.case_id == routed_case["case_id"])
        ).one()
        row.status = models.RESOLVED
        row.resolved_at = dt.datetime.now(dt.UTC)
        session.commit()
    body = {
        "case_id": routed_case["case_id"],
        "case_number": routed_case["case_number"],
        "unit": "lw-guokeng",
        "reason": "不" * SUPERVISION_COMMENT,
        "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    deliver(supervision_event("case.reopened", body))
    first, second = assignments(runtime, routed_case["case_id"])
    assert (first.status, second.unit, second.status) == ("replaced", "lw-guokeng", "assigned")


def test_a_case_registered_with_every_text_at_intake_s_limits_is_routed(
    runtime, deliver, case_data, case_registered
):
    # intake: summary and location 200, details 5000, the accused person 50, a unit code
    # of 63; a case number of 90 (its column), category and channel from its catalogue.
    data = case_data(
        case_number="c" * 63 + "-20261215-" + "9" * 17,
        category="demolition_compensation",
        channel="online",
        summary="诉" * 200,
        details="详" * 5000,
        location="地" * 200,
        accused={"unit": None, "person": "某" * 50},
        disposition={"action": "sign_over", "unit": "lw-guokeng"},
    )
    assert len(data["case_number"]) == 90
    deliver(case_registered(data))
    [assignment] = assignments(runtime, data["case_id"])
    assert (assignment.unit, assignment.summary, assignment.details) == (
        "lw-guokeng",
        data["summary"],
        data["details"],
    )


# -- who acted: every `by` routing publishes fits its consumers' 100 characters ------------


def test_every_actor_routing_names_fits_in_100_characters(client, runtime, signed_over):
    from servicekit import auth

    def bearer(unit: str, *roles: str, sub: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {auth.mint(unit, list(roles), sub=sub)}"}

    assignment_id = signed_over()
    path = f"/v1/assignments/{assignment_id}"
    # A partner's sub is published as it is: the longest a token may carry.
    longest = "lw-guokeng:" + "办" * (auth.MAX_SUBJECT - len("lw-guokeng:"))
    partner = bearer("lw-guokeng", "partner", sub=longest)
    assert client.post(f"{path}/accept", headers=partner).status_code == 200
    # The policy's grant, then the supervising unit's (named by its unit code).
    for days in (5, 20):
        body = {"days": days, "reason": "待鉴定"}
        assert client.post(f"{path}/extension", headers=partner, json=body).status_code == 200
    decision = {"grant": True, "reason": "同意"}
    supervisor = bearer("lw", "supervisor", sub="lw:" + "审" * 97)
    response = client.post(f"{path}/extension/decision", headers=supervisor, json=decision)
    assert response.status_code == 200
    table = models.metadata.tables["outbox"]
    with runtime.engine.connect() as conn:
        bodies = [json.loads(row.body) for row in conn.execute(select(table.c.body))]
    actors = [(data.get("by"), data.get("granted_by")) for data in bodies if "by" in data]
    assert actors == [
        (longest, None),  # twice: the events exchange and the partner's copy
        (longest, None),
        ("policy", "policy"),
        ("policy", "policy"),
        ("lw", "lw"),
        ("lw", "lw"),
    ]
    assert all(len(name) <= 100 for pair in actors for name in pair if name)
    # A token whose sub is longer is refused at the door, before anything is done.
    too_long = auth.mint("lw-guokeng", ["partner"], sub="x")
    claims = jwt.decode(too_long, options={"verify_signature": False})
    claims["sub"] = longest + "办"
    token = jwt.encode(claims, auth.secret(), algorithm=auth.ALGORITHM)
    response = client.post(
        f"{path}/progress", headers={"Authorization": f"Bearer {token}"}, json={"note": "n"}
    )
    assert response.status_code == 401
