"""What routing does with supervision's decisions: case.reopened and meeting.decision_recorded."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest
from sqlalchemy import select

from eventbus import envelope
from eventbus.envelope import PoisonMessage
from routing import models


def supervision_event(routing_key: str, data: dict, **kwargs):
    return envelope.build(
        service="supervision", routing_key=routing_key, subject=data["case_id"], data=data, **kwargs
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


def published(runtime) -> list[tuple[str, dict]]:
    table = models.metadata.tables["outbox"]
    with runtime.engine.connect() as conn:
        rows = conn.execute(
            select(table).where(table.c.exchange == "nighttalk.events").order_by(table.c.position)
        )
        return [(row.routing_key, json.loads(row.body)) for row in rows]


@pytest.fixture
def routed_case(runtime, deliver, case_data, case_registered):
    data = case_data()
    deliver(case_registered(data))
    return data


def resolve(runtime, case_id: str) -> None:
    with runtime.sessions() as session:
        assignment = session.scalars(
            select(models.Assignment).where(models.Assignment.case_id == case_id)
        ).one()
        assignment.status = models.RESOLVED
        assignment.resolved_at = dt.datetime.now(dt.UTC)
        session.commit()


def reopened(data, **changes):
    body = {
        "case_id": data["case_id"],
        "case_number": data["case_number"],
        "unit": "lw-guokeng",
        "reason": "来访人不满意",
        "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    body.update(changes)
    return supervision_event("case.reopened", body)


def test_a_reopened_case_goes_back_to_its_unit_with_a_new_deadline(runtime, deliver, routed_case):
    resolve(runtime, routed_case["case_id"])
    before = len(published(runtime))
    event = reopened(routed_case)
    deliver(event)
    first, second = chain(runtime, routed_case["case_id"])
    assert first.status == "replaced" and first.superseded_by == second.id
    assert second.unit == "lw-guokeng" and second.status == "assigned"
    assert second.routed_at > first.routed_at and second.due_at > first.due_at
    assert [key for key, _ in published(runtime)[before:]] == ["case.routed"]
    # The same reopening announced again (another event id) changes nothing.
    deliver(reopened(routed_case, occurred_at=json.loads(event.body)["occurred_at"]))
    assert len(chain(runtime, routed_case["case_id"])) == 2


def test_a_reopened_complaint_never_goes_back_to_the_accused(
    runtime, deliver, case_data, case_registered
):
    data = case_data(
        accused={"unit": "lw-buwen", "person": None},
        disposition={"action": "sign_over", "unit": "lw-guokeng"},
    )
    deliver(case_registered(data))
    resolve(runtime, data["case_id"])
    deliver(reopened(data, unit="lw-buwen"))
    assert [a.unit for a in chain(runtime, data["case_id"])] == ["lw-guokeng", "lw"]


def test_a_reopening_of_an_unknown_case_changes_nothing(runtime, deliver, case_data):
    deliver(reopened(case_data()))
    assert published(runtime) == []


def test_a_rejected_on_the_spot_answer_is_logged_and_applied_not_poison(
    runtime, deliver, case_data, case_registered, caplog
):
    # Supervision reopens a case its desk answered on the spot once the visitor rejects
    # the answer, naming the unit that received it; routing never routed that case.
    data = case_data(disposition={"action": "resolved_on_spot", "unit": None})
    deliver(case_registered(data))
    comment = "窗口答复不清楚" * 71  # a visitor's comment at supervision's longest, 497
    event = reopened(data, unit=data["unit"], reason=comment)
    with caplog.at_level(logging.INFO, logger="routing.usecases"):
        deliver(event)  # no PoisonMessage: the consumer acks it
    assert chain(runtime, data["case_id"]) == [] and published(runtime) == []
    [record] = [
        r for r in caplog.records if r.getMessage() == "reopened case was never routed here"
    ]
    assert record.levelno == logging.WARNING and record.case_id == data["case_id"]
    assert "窗口" not in caplog.text  # the visitor's words stay out of the log
    inbox = runtime.inbox_table
    with runtime.engine.connect() as conn:
        claimed = conn.scalars(
            select(inbox.c.event_id).where(inbox.c.event_id == event.event_id)
        ).all()
    assert claimed == [event.event_id]  # applied (and so acked) once


def test_an_invalid_reopening_is_poison(runtime, deliver, routed_case):
    with pytest.raises(PoisonMessage):
        deliver(reopened(routed_case, occurred_at="yesterday"))


def decision(data, **changes):
    body = {
        "case_id": data["case_id"],
        "case_number": data["case_number"],
        "month": "2026-12",
        "decision": "reassign",
        "unit": "city-land",
        "due_at": None,
        "note": "联席会议决定",
    }
    body.update(changes)
    return supervision_event("meeting.decision_recorded", body)


def test_a_meeting_reassigns_a_case(runtime, deliver, routed_case):
    before = len(published(runtime))
    deliver(decision(routed_case))
    first, second = chain(runtime, routed_case["case_id"])
    assert (first.status, second.unit, second.status) == ("replaced", "city-land", "assigned")
    assert [key for key, _ in published(runtime)[before:]] == ["case.routed"]


def test_a_meeting_extends_a_deadline(runtime, deliver, routed_case):
    [assignment] = chain(runtime, routed_case["case_id"])
    later = assignment.due_at + dt.timedelta(days=20)
    deliver(decision(routed_case, decision="extend", unit=None, due_at=later.isoformat()))
    [extended] = chain(runtime, routed_case["case_id"])
    assert extended.due_at == later and extended.extensions == 1
    key, data = published(runtime)[-1]
    assert key == "assignment.extension_granted" and data["granted_by"] == "joint-meeting"
    # An earlier date than the current one never shortens it.
    deliver(
        decision(routed_case, decision="extend", unit=None, due_at=assignment.due_at.isoformat())
    )
    assert chain(runtime, routed_case["case_id"])[0].due_at == later


@pytest.mark.parametrize(
    "changes",
    [
        {"decision": "reassign", "unit": None},
        {"decision": "extend", "unit": None, "due_at": None},
        {"decision": "abolish"},
        {"decision": "reassign", "unit": "nowhere"},
    ],
)
def test_invalid_meeting_decisions_are_poison(runtime, deliver, routed_case, changes):
    with pytest.raises(PoisonMessage):
        deliver(decision(routed_case, **changes))


def test_a_note_changes_nothing(runtime, deliver, routed_case):
    before = published(runtime)
    deliver(decision(routed_case, decision="note", unit=None))
    assert published(runtime) == before
    assert len(chain(runtime, routed_case["case_id"])) == 1


# -- decisions arriving out of order ------------------------------------------------------


DECIDED = dt.datetime(2027, 1, 20, 9, 0, tzinfo=dt.UTC)


def decided(data, at: dt.datetime, stamped: str = "occurred_at", **changes):
    """Return a decision recorded ``at``, said in its payload or only by the event's time."""
    if stamped == "occurred_at":
        return decision(data, occurred_at=at.isoformat(), **changes)
    body = json.loads(decision(data, **changes).body)
    return supervision_event("meeting.decision_recorded", body, time=at)


def superseded(runtime, case_id: str) -> list[str]:
    with runtime.sessions() as session:
        return list(
            session.scalars(
                select(models.AssignmentAction.text)
                .join(
                    models.Assignment, models.Assignment.id == models.AssignmentAction.assignment_id
                )
                .where(
                    models.Assignment.case_id == case_id,
                    models.AssignmentAction.action == "meeting_decision_superseded",
                )
            )
        )


@pytest.mark.parametrize("stamped", ["occurred_at", "time"])
def test_an_older_reassignment_arriving_after_a_newer_one_is_superseded(
    runtime, deliver, routed_case, stamped, caplog
):
    case_id = routed_case["case_id"]
    newer = DECIDED
    older = DECIDED - dt.timedelta(days=31)
    deliver(decided(routed_case, newer, stamped, unit="city-land"))
    before = published(runtime)

    # The older decision redelivered after a consumer crash: acked, not applied.
    with caplog.at_level(logging.INFO, logger="routing.usecases"):
        deliver(decided(routed_case, older, stamped, unit="lw"))

    assert [a.unit for a in chain(runtime, case_id)] == ["lw-guokeng", "city-land"]
    assert published(runtime) == before
    [note] = superseded(runtime, case_id)
    assert "reassign to lw" in note
    [record] = [r for r in caplog.records if r.getMessage() == "meeting decision superseded"]
    assert record.levelno == logging.INFO and record.case_id == case_id


def test_an_older_extension_arriving_after_a_reassignment_leaves_the_new_unit_s_deadline(
    runtime, deliver, routed_case
):
    case_id = routed_case["case_id"]
    deliver(decided(routed_case, DECIDED, unit="city-land"))
    [_, new] = chain(runtime, case_id)
    extend = {"decision": "extend", "unit": None, "due_at": "2027-06-30T00:00:00+00:00"}

    deliver(decided(routed_case, DECIDED - dt.timedelta(days=31), **extend))

    [_, after] = chain(runtime, case_id)
    assert (after.id, after.due_at, after.extensions) == (new.id, new.due_at, 0)
    assert [key for key, _ in published(runtime)].count("assignment.extension_granted") == 0
    assert len(superseded(runtime, case_id)) == 1


def test_an_older_reassignment_to_a_unit_retired_since_is_superseded_not_poison(
    runtime, deliver, routed_case
):
    deliver(decided(routed_case, DECIDED, unit="city-land"))
    deliver(decided(routed_case, DECIDED - dt.timedelta(days=31), unit="nowhere"))
    assert [a.unit for a in chain(runtime, routed_case["case_id"])] == ["lw-guokeng", "city-land"]
    assert len(superseded(runtime, routed_case["case_id"])) == 1


def test_decisions_arriving_in_order_are_all_applied(runtime, deliver, routed_case):
    case_id = routed_case["case_id"]
    deliver(decided(routed_case, DECIDED - dt.timedelta(days=31), unit="lw"))
    deliver(decided(routed_case, DECIDED, unit="city-land"))
    # A note changes nothing at routing, so it supersedes nothing either.
    deliver(decided(routed_case, DECIDED + dt.timedelta(days=31), decision="note", unit=None))
    deliver(decided(routed_case, DECIDED + dt.timedelta(days=1), unit="lw-buwen"))

    assert [a.unit for a in chain(runtime, case_id)] == [
        "lw-guokeng",
        "lw",
        "city-land",
        "lw-buwen",
    ]
    assert superseded(runtime, case_id) == []


def test_the_inbox_lists_new_assignments_by_cursor(
    runtime, deliver, case_data, case_registered, database
):
    from routing.app import create_app
    from servicekit.auth import mint

    for n in range(5):
        deliver(case_registered(case_data(case_number=f"city-org-20261215-{n:04d}")))
    app = create_app(
        {
            "DATABASE_URL": database,
            "AMQP_URL": "amqp://guest:guest@127.0.0.1:1/%2F",
            "TESTING": True,
        }
    )
    client = app.test_client()
    headers = {"Authorization": f"Bearer {mint('lw-guokeng', ['partner'])}"}
    seen, cursor = [], None
    while True:
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(f"/v1/inbox?{query}", headers=headers).get_json()
        seen += [item["case_number"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"city-org-20261215-{n:04d}" for n in range(5)]
    other = {"Authorization": f"Bearer {mint('lw-buwen', ['partner'])}"}
    assert client.get("/v1/inbox", headers=other).get_json() == {"items": [], "next_cursor": None}
    assert client.get("/v1/inbox?cursor=zzz", headers=headers).status_code == 422
    assert client.get("/v1/inbox?limit=101", headers=headers).status_code == 422
    assert client.get("/v1/inbox?unit=lw", headers=headers).status_code == 422
    admin = {"Authorization": f"Bearer {mint('city-org', ['admin'])}"}
    assert client.get("/v1/inbox", headers=admin).status_code == 403
    app.extensions["runtime"].close()
