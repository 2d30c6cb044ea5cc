"""The event contract, from notify's side: what a producer accepts, notify reads.

A consumer accepts everything its producer can emit: an event notify refused would be
dead-lettered and its visitor (or leader) never told. These tests read each bound from the
producer's own input schema (intake's, routing's, supervision's), build the event at that
bound and hand it to notify's handlers, so a producer widening a limit fails here first.
"""

from __future__ import annotations

import pytest
from marshmallow import Schema, validate
from notify_sample_events import (
    Visit,
    assignment_resolved,
    case_routed,
    intake_event,
    supervision_event,
    unit_changed,
)

from intake import catalogue as intake_catalogue
from intake import schemas as intake_schemas
from notify import models
from routing import models as routing_models
from routing import schemas as routing_schemas
from supervision import schemas as supervision_schemas


def longest(schema: type[Schema], field: str) -> int:
    """Return the maximum length the producer's schema allows a field."""
    (bound,) = [
        v.max
        for v in schema().fields[field].validators
        if isinstance(v, validate.Length) and v.max is not None
    ]
    return bound


def kinds(notifications) -> set[tuple[str, str, str]]:
    return {(n.kind, n.recipient_kind, n.channel) for n in notifications}


ANSWERED = {
    (models.ANSWER, models.VISITOR, models.SMS),
    (models.ANSWER, models.VISITOR, models.LETTER),
    (models.SATISFACTION, models.VISITOR, models.SMS),
}


def test_the_longest_answer_routing_accepts_reaches_the_visitor(deliver, notifications_of):
    visit = Visit()
    answer = "答" * longest(routing_schemas.ResolveIn, "answer")
    deliver(visit.case_registered())
    deliver(visit.contact_recorded())

    deliver(assignment_resolved(visit, "lw-guokeng", answer=answer))

    answered = [n for n in notifications_of(visit.case_ids[0]) if n.kind != models.RECEIPT]
    assert kinds(answered) == ANSWERED
    assert {n.payload["answer"] for n in answered} == {answer}


def test_the_longest_answer_given_at_the_desk_reaches_the_visitor(deliver, notifications_of):
    visit = Visit()
    answer = "答" * longest(intake_schemas.DispositionIn, "answer")
    data = {
        "case_id": visit.case_ids[0],
        "case_number": visit.case_numbers[0],
        "unit": visit.unit,
        "answer": answer,
        "resolved_at": visit.received_at.isoformat(),
    }

    deliver(intake_event("case.resolved_on_spot", visit.case_ids[0], data))

    assert kinds(notifications_of(visit.case_ids[0])) == ANSWERED


def test_the_longest_named_supervisor_supervision_accepts_reaches_the_leader(
    deliver, notifications_of
):
    visit = Visit()
    supervisor = "督" * longest(supervision_schemas.SupervisorIn, "supervisor")

    deliver(
        supervision_event(
            "case.escalated",
            visit,
            "lw-guokeng",
            level="major",
            supervisor_unit="city-org",
            supervisor=supervisor,
        )
    )

    (escalated, *more) = notifications_of(visit.case_ids[0])
    assert escalated.kind == models.ESCALATED
    assert escalated.payload["supervisor"] == supervisor
    assert {n.kind for n in more} <= {models.ESCALATED}


def _ladder_levels() -> list[int]:
    """Return every level supervision lets an admin give an escalation step of its ladder."""
    (bound,) = [
        v
        for v in supervision_schemas.LadderStepIn().fields["level"].validators
        if isinstance(v, validate.Range)
    ]
    return list(range(bound.min, bound.max + 1))


@pytest.mark.parametrize("level", _ladder_levels())
def test_every_ladder_level_supervision_accepts_reaches_the_leader(
    level, deliver, notifications_of
):
    visit = Visit()

    deliver(
        supervision_event(
            "case.escalated",
            visit,
            "lw-guokeng",
            level=level,
            supervisor_unit="lw-guokeng",
            supervisor=None,
        )
    )

    escalations = notifications_of(visit.case_ids[0])
    assert escalations, f"level {level} refused"
    assert {(n.kind, n.occasion) for n in escalations} == {(models.ESCALATED, f"level-{level}")}


def test_the_longest_case_intake_registers_reaches_notify(deliver, notifications_of):
    """The visitor's name and address, the case's summary and location, as long as intake
    lets the desk type them, and its longest category, through routing's case.routed."""
    visit = Visit()
    name = "林" * longest(intake_schemas.VisitorIn, "name")
    address = "址" * longest(intake_schemas.VisitorIn, "address")
    summary = "事" * longest(intake_schemas.IssueIn, "summary")
    location = "地" * longest(intake_schemas.IssueIn, "location")
    category = max(intake_catalogue.CATEGORIES, key=len)
    deliver(visit.case_registered())
    deliver(visit.contact_recorded(name=name, address=address))

    deliver(case_routed(visit, "lw-guokeng", summary=summary, location=location, category=category))

    assigned = [n for n in notifications_of(visit.case_ids[0]) if n.kind == models.ASSIGNMENT]
    assert assigned
    assert {(n.payload["summary"], n.payload["location"]) for n in assigned} == {
        (summary, location)
    }


def test_the_longest_unit_routing_accepts_reaches_notify(deliver, runtime):
    name = "单" * longest(routing_schemas.UnitIn, "name")
    leader = "长" * longest(routing_schemas.UnitIn, "leader")
    levels = routing_models.LEVELS

    for revision, level in enumerate(levels, start=1):
        deliver(
            unit_changed("lw-guokeng", revision=revision, name=name, leader=leader, level=level)
        )

    with runtime.sessions() as session:
        unit = session.get(models.UnitContact, "lw-guokeng")
        assert (unit.name, unit.leader, unit.level) == (name, leader, levels[-1])


def test_a_long_answer_is_shortened_in_the_sms_and_whole_in_the_letter(
    deliver, runtime, make_worker, gateway
):
    """An SMS carries the answer's first 200 characters and says where the rest is; the
    letter (致来访者的一封信) carries it whole."""
    visit = Visit()
    answer = "甲" * 150 + "乙" * 100 + "丙" * (longest(routing_schemas.ResolveIn, "answer") - 250)
    deliver(visit.case_registered())
    deliver(visit.contact_recorded())
    deliver(assignment_resolved(visit, "lw-guokeng", answer=answer))

    make_worker().drain()

    (sms,) = [r.json()["text"] for r in gateway.requests if "办结" in r.json()["text"]]
    assert sms == (
        f"【夜话】您反映的问题（编号{visit.case_numbers[0]}）已由lw-guokeng办结："
        + "甲" * 150
        + "乙" * 49
        + "…（答复全文见《致来访者的一封信》）"
    )
    with runtime.sessions() as session:
        (letter,) = session.query(models.Letter).all()
        assert answer in letter.html


@pytest.mark.parametrize("length", [1, 200])
def test_an_answer_that_fits_goes_whole_in_the_sms(length, deliver, make_worker, gateway):
    visit = Visit()
    answer = "答" * length
    deliver(visit.case_registered())
    deliver(visit.contact_recorded())
    deliver(assignment_resolved(visit, "lw-guokeng", answer=answer))

    make_worker().drain()

    (sms,) = [r.json()["text"] for r in gateway.requests if "办结" in r.json()["text"]]
    assert sms.endswith("办结：" + answer)


def test_a_long_answer_in_english_is_cut_at_a_word(deliver, make_worker, gateway):
    visit = Visit()
    answer = "word " * 1000
    deliver(visit.case_registered())
    deliver(visit.contact_recorded(data=visit.contact_data() | {"language": "en"}))
    deliver(assignment_resolved(visit, "lw-guokeng", answer=answer.strip()))

    make_worker().drain()

    (sms,) = [r.json()["text"] for r in gateway.requests if "has answered" in r.json()["text"]]
    shortened = sms.split(": ", 1)[1]
    assert shortened == "word " * 38 + "word… (the full answer is in your letter)"
