"""A co-handling unit's (协办) answer never resolves the case, whatever order events come in.

routing publishes a case.routed for every assignment (the lead's and each co-handler's)
before any answer to it; the consumer may still deliver an answer first (a delayed or
redelivered routing). An answer marked ``"role": "co"`` never resolves the case; one with
no role (published before routing carried it) resolves it only once a lead's case.routed
names its assignment, which may come after it.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from intake_samples import CST, assignment_resolved, case_routed, consume

from routing import events as routing_events
from routing import models as routing_models
from routing import schemas as routing_schemas
from servicekit.auth import MAX_SUBJECT

T0 = dt.datetime(2026, 11, 20, 12, 0, tzinfo=CST)
DAY = dt.timedelta(days=1)


@pytest.fixture
def case(register) -> tuple[str, str]:
    registered = register()["cases"][1]  # the medical case, signed over to lw-guokeng
    return registered["case_id"], registered["case_number"]


def shown(client, bearer, number) -> dict:
    r = client.get(f"/v1/cases/{number}", headers=bearer())
    assert r.status_code == 200, r.get_json()
    return r.get_json()


@pytest.mark.parametrize("role", [None, "co"])
def test_a_co_handlers_answer_before_the_leads_routing_does_not_resolve_the_case(
    client, bearer, runtime, case, role
):
    """The audit's order: the lead's case.routed is held back while the co-handler is
    added and answers its part."""
    case_id, number = case
    lead, co = str(uuid.uuid4()), str(uuid.uuid4())
    consume(
        runtime,
        case_routed(case_id, number, "lw-buwen", routed_at=T0 + DAY, assignment_id=co, role="co"),
        assignment_resolved(case_id, number, "lw-buwen", co, at=T0 + 2 * DAY, role=role),
    )
    assert shown(client, bearer, number)["status"] == "open"
    consume(runtime, case_routed(case_id, number, "lw-guokeng", routed_at=T0, assignment_id=lead))
    shows = shown(client, bearer, number)
    assert (shows["status"], shows["responsible_unit"], shows["resolved_at"]) == (
        "routed",
        "lw-guokeng",
        None,
    )
    # The lead's own answer resolves it, at its time.
    consume(runtime, assignment_resolved(case_id, number, "lw-guokeng", lead, at=T0 + 9 * DAY))
    shows = shown(client, bearer, number)
    assert shows["status"] == "resolved"
    assert dt.datetime.fromisoformat(shows["resolved_at"]) == T0 + 9 * DAY


@pytest.mark.parametrize("role", [None, "co"])
def test_a_co_handlers_answer_before_any_routing_does_not_resolve_the_case(
    client, bearer, runtime, case, role
):
    case_id, number = case
    lead, co = str(uuid.uuid4()), str(uuid.uuid4())
    consume(runtime, assignment_resolved(case_id, number, "lw-buwen", co, at=T0 + DAY, role=role))
    assert shown(client, bearer, number)["status"] == "open"
    consume(
        runtime,
        case_routed(case_id, number, "lw-guokeng", routed_at=T0, assignment_id=lead),
        case_routed(case_id, number, "lw-buwen", routed_at=T0, assignment_id=co, role="co"),
    )
    assert shown(client, bearer, number)["status"] == "routed"


@pytest.mark.parametrize("role", ["lead", None])
def test_a_leads_answer_before_any_routing_resolves_the_case(client, bearer, runtime, case, role):
    """Marked lead, at once; unmarked, when the lead's routing names its assignment."""
    case_id, number = case
    lead = str(uuid.uuid4())
    consume(
        runtime, assignment_resolved(case_id, number, "lw-guokeng", lead, at=T0 + DAY, role=role)
    )
    assert shown(client, bearer, number)["status"] == ("resolved" if role else "open")
    consume(runtime, case_routed(case_id, number, "lw-guokeng", routed_at=T0, assignment_id=lead))
    shows = shown(client, bearer, number)
    assert (shows["status"], shows["responsible_unit"]) == ("resolved", "lw-guokeng")
    assert dt.datetime.fromisoformat(shows["resolved_at"]) == T0 + DAY


def routing_resolved(case_id: str, number: str, unit: str, role: str, *, answer: str, by: str):
    """Return assignment.resolved as routing's own code builds it."""
    assignment = routing_models.Assignment(
        id=str(uuid.uuid4()),
        case_id=case_id,
        case_number=number,
        unit=unit,
        role=role,
        status=routing_models.RESOLVED,
        routed_at=T0,
        due_at=T0 + 31 * DAY,
    )
    acted = routing_models.AssignmentActed(
        assignment, "resolved", T0 + 3 * DAY, by, {"answer": answer}
    )
    (event,) = routing_events.to_integration(acted)
    return assignment.id, event


def test_intake_reads_routings_answers_at_routings_bounds(client, bearer, runtime, case):
    """The longest answer and ``by`` routing accepts, and the role it marks them with
    (if it does): read without a dead letter, a co-handler's still not the case's."""
    case_id, number = case
    (bound,) = [
        v.max
        for v in routing_schemas.ResolveIn().fields["answer"].validators
        if getattr(v, "max", None) is not None
    ]
    answer, by = "答" * bound, "b" * MAX_SUBJECT
    lead, lead_answer = routing_resolved(
        case_id, number, "lw-guokeng", "lead", answer=answer, by=by
    )
    co, co_answer = routing_resolved(case_id, number, "lw-buwen", "co", answer=answer, by=by)
    consume(
        runtime,
        co_answer,
        case_routed(case_id, number, "lw-buwen", routed_at=T0, assignment_id=co, role="co"),
        case_routed(case_id, number, "lw-guokeng", routed_at=T0, assignment_id=lead),
    )
    assert shown(client, bearer, number)["status"] == "routed"
    consume(runtime, lead_answer)
    assert shown(client, bearer, number)["status"] == "resolved"
