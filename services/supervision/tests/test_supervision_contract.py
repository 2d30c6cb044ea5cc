"""Supervision reads everything its producers can publish: no event of theirs is poison here.

A payload supervision's schema refuses is dead-lettered and its effect lost (a resolved case
left open and climbing the ladder). Each text is filled to the longest its producer accepts
at its own door, read from the producer's input schema, so a limit widened there fails here
until supervision reads as much.
"""

from __future__ import annotations

import uuid

import pytest
from marshmallow import validate
from supervision_samples import (
    assignment_event,
    case_registered,
    case_resolved_on_spot,
    case_routed,
    case_row,
    consume,
    new_case,
    timeline,
)

from intake import schemas as intake_schemas
from routing import schemas as routing_schemas
from servicekit import auth
from supervision import models
from supervision import schemas as supervision_schemas


def longest(schema, field: str) -> int:
    """Return the most characters ``schema`` accepts in ``field`` (its Length validator)."""
    declared = schema._declared_fields[field]
    found = declared.validators if hasattr(declared, "validators") else [declared.validate]
    lengths = [v.max for v in found if isinstance(v, validate.Length) and v.max]
    assert lengths, f"{schema.__name__}.{field} has no length bound"
    return min(lengths)


def filled(schema, field: str) -> str:
    return "字" * longest(schema, field)


# Who acted: the caller's token subject, as long as servicekit lets one be.
LONGEST_BY = "lw-buwen:" + "办" * (auth.MAX_SUBJECT - len("lw-buwen:"))


def routed(runtime):
    case_id, number = new_case()
    assignment_id = str(uuid.uuid4())
    consume(runtime, case_registered(case_id, number))
    consume(runtime, case_routed(case_id, number, assignment_id=assignment_id))
    return case_id, number, assignment_id


def test_an_answer_as_long_as_routing_takes_resolves_the_case(runtime):
    case_id, number, assignment_id = routed(runtime)
    answer = filled(routing_schemas.ResolveIn, "answer")

    consume(
        runtime,
        assignment_event(
            "assignment.resolved", case_id, number, assignment_id, answer=answer, by=LONGEST_BY
        ),
    )

    assert case_row(runtime, case_id)["status"] == models.RESOLVED
    [entry] = [e for e in timeline(runtime, case_id) if e[1] == "assignment.resolved"]
    assert entry[3]["answer"] == answer


# Every assignment.* event with each text routing puts in it at the longest routing takes.
# The meeting's extension carries the meeting's note as its reason (routing forwards it).
ASSIGNMENT_TEXTS = {
    "assignment.accepted": {},
    "assignment.progressed": {"note": (routing_schemas.ProgressIn, "note")},
    "assignment.returned": {"reason": (routing_schemas.ReturnIn, "reason")},
    "assignment.transferred": {"reason": (routing_schemas.TransferIn, "reason")},
    "assignment.arbitration_requested": {"reason": (routing_schemas.ArbitrationIn, "reason")},
    "assignment.extension_granted": {"reason": (supervision_schemas.DecisionIn, "note")},
    "assignment.resolved": {"answer": (routing_schemas.ResolveIn, "answer")},
}


@pytest.mark.parametrize("routing_key", list(ASSIGNMENT_TEXTS))
def test_every_assignment_event_at_routings_limits_is_read(runtime, routing_key):
    case_id, number, assignment_id = routed(runtime)
    data = {key: filled(*where) for key, where in ASSIGNMENT_TEXTS[routing_key].items()}
    if routing_key == "assignment.extension_granted":
        data.update(due_at="2027-02-20T16:00:00+00:00", granted_by=LONGEST_BY)
    if routing_key == "assignment.transferred":
        data["to_unit"] = "lw-chaoyang"
    if routing_key == "assignment.arbitration_requested":
        data["supervising_unit"] = "lw"

    consume(
        runtime,
        assignment_event(routing_key, case_id, number, assignment_id, by=LONGEST_BY, **data),
    )

    [entry] = [e for e in timeline(runtime, case_id) if e[1] == routing_key]
    assert {key: entry[3][key] for key in data if key != "due_at"} == {
        key: value for key, value in data.items() if key != "due_at"
    }
    assert entry[3]["by"] == LONGEST_BY


def test_intakes_texts_at_intakes_limits_are_read(runtime):
    case_id, number = new_case()
    summary = filled(intake_schemas.IssueIn, "summary")
    person = filled(intake_schemas.AccusedIn, "person")
    answer = filled(intake_schemas.DispositionIn, "answer")

    consume(
        runtime,
        case_registered(
            case_id,
            number,
            status="resolved_on_spot",
            summary=summary,
            accused={"unit": None, "person": person},
        ),
    )
    consume(runtime, case_resolved_on_spot(case_id, number, answer=answer))

    assert case_row(runtime, case_id)["status"] == models.RESOLVED_ON_SPOT
    summaries = {e[1]: e[3] for e in timeline(runtime, case_id)}
    assert summaries["case.registered"]["summary"] == summary
    assert summaries["case.registered"]["accused"]["person"] == person
    assert summaries["case.resolved_on_spot"]["answer"] == answer
