"""The handlers on a real database: each event's effect, duplicates, order, and poison."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import re
import uuid

import pytest
import sqlalchemy
from sqlalchemy import func, select
from supervision_samples import (
    FOLLOWED_UP_AT,
    INTAKE_DUE_AT,
    RECEIVED_AT,
    ROUTED_AT,
    ROUTED_DUE_AT,
    case_registered,
    case_resolved_on_spot,
    case_routed,
    case_row,
    consume,
    handle,
    new_case,
    received,
    timeline,
    visit_followed_up,
    visit_registered,
)

from eventbus.envelope import PoisonMessage
from supervision import models
from supervision.handlers import handlers


def count(runtime, model) -> int:
    with runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(model))


def updated_at(runtime, case_id: str) -> dt.datetime:
    with runtime.sessions() as session:
        return session.get(models.SupervisedCase, case_id).updated_at


def test_handlers_are_bound_to_the_events_supervision_follows():
    assert set(handlers()) == {
        "case.registered",
        "case.resolved_on_spot",
        "case.routed",
        "visit.registered",
        "visit.followed_up",
        "unit.changed",
        "assignment.accepted",
        "assignment.returned",
        "assignment.transferred",
        "assignment.progressed",
        "assignment.resolved",
        "assignment.extension_granted",
        "assignment.arbitration_requested",
    }


def test_case_registered_opens_the_case_without_a_clock_until_routed(runtime):
    case_id, number = new_case()
    event = case_registered(case_id, number)

    consume(runtime, event)

    row = case_row(runtime, case_id)
    assert row == {
        "case_id": case_id,
        "case_number": number,
        "receiving_unit": "city-org",
        "responsible_unit": None,
        "category": "demolition_compensation",
        "channel": "night_talk",
        "status": "open",
        "received_at": RECEIVED_AT,
        "registered": True,
        "routed_at": None,
        "due_at": None,
        "resolved_at": None,
        "assignment_id": None,
        "repeat_of": None,
    }
    [(event_id, event_type, occurred_at, summary)] = timeline(runtime, case_id)
    assert (event_id, event_type, occurred_at) == (event.event_id, "case.registered", RECEIVED_AT)
    assert summary["disposition"] == {"action": "route"}
    # Intake's promise is kept on the timeline; the binding date comes with the routing.
    assert summary["due_at"] == INTAKE_DUE_AT.isoformat()
    assert summary["accused"] == {"unit": "lw-buwen", "person": None}
    # A pseudonym, but still nothing the timeline needs to show.
    assert "visitor_ref" not in summary


def test_case_routed_gives_the_responsible_unit_and_the_binding_due_date(runtime):
    case_id, number = new_case()
    assignment_id = str(uuid.uuid4())

    consume(runtime, case_registered(case_id, number))
    consume(runtime, case_routed(case_id, number, assignment_id=assignment_id))

    row = case_row(runtime, case_id)
    assert row["status"] == "routed"
    assert row["responsible_unit"] == "lw-buwen"
    assert row["assignment_id"] == assignment_id
    assert row["routed_at"] == ROUTED_AT
    assert row["due_at"] == ROUTED_DUE_AT
    assert [e[1] for e in timeline(runtime, case_id)] == ["case.registered", "case.routed"]


def test_case_resolved_on_spot_never_gets_a_clock(runtime):
    case_id, number = new_case()

    consume(runtime, case_registered(case_id, number, status="resolved_on_spot"))
    consume(runtime, case_resolved_on_spot(case_id, number))

    row = case_row(runtime, case_id)
    assert row["status"] == "resolved_on_spot"
    assert row["due_at"] is None
    assert row["resolved_at"] == RECEIVED_AT
    # Both happened at the reception itself, so either may come first on the timeline.
    assert sorted(e[1] for e in timeline(runtime, case_id)) == [
        "case.registered",
        "case.resolved_on_spot",
    ]


@pytest.mark.parametrize(
    "order", list(itertools.permutations(range(3))), ids=lambda order: "-".join(map(str, order))
)
def test_a_stray_routing_of_a_case_resolved_on_spot_starts_no_clock(runtime, order):
    case_id, number = new_case()
    events = [
        case_registered(case_id, number, status="resolved_on_spot"),
        case_resolved_on_spot(case_id, number),
        case_routed(case_id, number),
    ]

    for index in order:
        consume(runtime, events[index])

    row = case_row(runtime, case_id)
    assert (row["status"], row["due_at"], row["resolved_at"]) == (
        "resolved_on_spot",
        None,
        RECEIVED_AT,
    )


def test_visit_registered_keeps_the_batch_counts(runtime):
    visit_id = str(uuid.uuid4())
    case_ids = [str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())]

    consume(runtime, visit_registered(visit_id, case_ids))

    with runtime.sessions() as session:
        visit = session.get(models.VisitRecord, visit_id)
        assert (visit.unit, visit.channel, visit.received_at) == (
            "city-org",
            "night_talk",
            RECEIVED_AT,
        )
        assert (visit.headcount, visit.issues, visit.follow_ups) == (5, 3, 1)


def test_visit_followed_up_goes_on_the_cases_timeline(runtime):
    case_id, number = new_case()
    follow_up = visit_followed_up(case_id, number)

    consume(runtime, case_registered(case_id, number))
    consume(runtime, follow_up)

    entries = timeline(runtime, case_id)
    assert [e[1] for e in entries] == ["case.registered", "visit.followed_up"]
    assert entries[1][0] == follow_up.event_id
    assert entries[1][2] == FOLLOWED_UP_AT
    assert entries[1][3]["unit"] == "lw-org"
    assert case_row(runtime, case_id)["status"] == "open"


def test_visit_followed_up_before_the_case_waits_on_the_timeline(runtime):
    case_id, number = new_case()

    consume(runtime, visit_followed_up(case_id, number))
    assert case_row(runtime, case_id) is None

    consume(runtime, case_registered(case_id, number))
    assert [e[1] for e in timeline(runtime, case_id)] == ["case.registered", "visit.followed_up"]


# -- duplicates ----------------------------------------------------------------------------


def _every_kind_of_event(case_id: str, number: str) -> list:
    return [
        case_registered(case_id, number),
        case_routed(case_id, number),
        case_resolved_on_spot(case_id, number),
        visit_followed_up(case_id, number),
        visit_registered(str(uuid.uuid4()), [case_id]),
    ]


@pytest.mark.parametrize("apply", [consume, handle], ids=["through-the-inbox", "handler-alone"])
def test_the_same_events_twice_have_one_effect(runtime, apply):
    case_id, number = new_case()
    events = _every_kind_of_event(case_id, number)

    for event in events:
        apply(runtime, event)
    once = (
        case_row(runtime, case_id),
        timeline(runtime, case_id),
        count(runtime, models.VisitRecord),
    )
    for event in events:
        apply(runtime, event)
    twice = (
        case_row(runtime, case_id),
        timeline(runtime, case_id),
        count(runtime, models.VisitRecord),
    )

    assert once == twice
    assert len(once[1]) == 4
    assert once[2] == 1


def test_a_redelivered_event_leaves_the_case_untouched(runtime):
    """Even without the inbox, a second copy of an event is not applied again."""
    case_id, number = new_case()
    event = case_routed(case_id, number)
    handle(runtime, case_registered(case_id, number))
    handle(runtime, event)
    first = updated_at(runtime, case_id)

    handle(runtime, event)

    assert updated_at(runtime, case_id) == first


# -- order ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "order", list(itertools.permutations(range(3))), ids=lambda order: "-".join(map(str, order))
)
def test_any_order_gives_the_same_case_and_timeline(runtime, order):
    """Registered, routed and followed up, applied in each order, end in the same state."""
    case_id, number = new_case()
    events = [
        case_registered(case_id, number),
        case_routed(case_id, number, assignment_id="assignment-1"),
        visit_followed_up(case_id, number),
    ]

    for index in order:
        consume(runtime, events[index])

    assert case_row(runtime, case_id) == {
        "case_id": case_id,
        "case_number": number,
        "receiving_unit": "city-org",
        "responsible_unit": "lw-buwen",
        "category": "demolition_compensation",
        "channel": "night_talk",
        "status": "routed",
        "received_at": RECEIVED_AT,
        "registered": True,
        "routed_at": ROUTED_AT,
        "due_at": ROUTED_DUE_AT,
        "resolved_at": None,
        "assignment_id": "assignment-1",
        "repeat_of": None,
    }
    assert [(e[0], e[1]) for e in timeline(runtime, case_id)] == [
        (events[0].event_id, "case.registered"),
        (events[1].event_id, "case.routed"),
        (events[2].event_id, "visit.followed_up"),
    ]


def test_routed_before_registered_equals_registered_before_routed(runtime):
    """Both orders on two cases: the rows and timelines differ only in their ids."""

    def run(order):
        case_id, number = new_case()
        events = [
            case_registered(case_id, number),
            case_routed(case_id, number, assignment_id="assignment-1"),
        ]
        for index in order:
            consume(runtime, events[index])
        row = case_row(runtime, case_id)
        entries = [(e[1], e[2], e[3]) for e in timeline(runtime, case_id)]
        for entry in entries:
            entry[2].pop("case_number")
        del row["case_id"], row["case_number"]
        return row, entries

    in_order = run([0, 1])
    assert in_order[0]["status"] == "routed"
    assert run([1, 0]) == in_order


# Where each kind of statement names the table it works on.
TARGET = {
    "SELECT": re.compile(r"\bFROM\s+(\w+)"),
    "INSERT": re.compile(r"^INSERT INTO\s+(\w+)"),
    "UPDATE": re.compile(r"^UPDATE\s+(\w+)"),
    "DELETE": re.compile(r"^DELETE FROM\s+(\w+)"),
}


@contextlib.contextmanager
def statements_on(engine, *tables: str):
    """Collect (kind, table) of the statements run on ``tables`` in the block, in order."""
    seen: list[tuple[str, str]] = []

    def note(conn, cursor, statement, parameters, context, executemany):
        statement = statement.strip()
        kind = statement.split(None, 1)[0].upper()
        found = TARGET[kind].search(statement) if kind in TARGET else None
        if found and found.group(1) in tables:
            seen.append((kind, found.group(1)))

    sqlalchemy.event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", note)


def test_the_usual_order_finds_or_creates_each_case_with_one_statement(runtime):
    """Registration inserts the case whole; routing locks the case it expects.

    A first routing also starts a clock that has no timers yet to delete.
    """
    case_id, number = new_case()

    with statements_on(runtime.engine, "supervised_cases", "clock_timers") as registering:
        consume(runtime, case_registered(case_id, number))
    with statements_on(runtime.engine, "supervised_cases", "clock_timers") as routing:
        consume(runtime, case_routed(case_id, number, assignment_id="assignment-1"))

    assert registering == [("INSERT", "supervised_cases")]
    assert routing == [
        ("SELECT", "supervised_cases"),
        ("INSERT", "clock_timers"),
        ("UPDATE", "supervised_cases"),
    ]
    assert case_row(runtime, case_id)["status"] == "routed"


@pytest.mark.parametrize("order", [[0, 1], [1, 0]], ids=["in-order", "routed-first"])
def test_what_intake_registered_wins_over_what_routing_repeated(runtime, order):
    case_id, number = new_case()
    events = [
        case_registered(case_id, number),
        case_routed(case_id, number, receiving_unit="lw-org", category="land", channel="daily"),
    ]

    for index in order:
        consume(runtime, events[index])

    row = case_row(runtime, case_id)
    assert (row["receiving_unit"], row["category"], row["channel"]) == (
        "city-org",
        "demolition_compensation",
        "night_talk",
    )


def test_routed_first_creates_the_case_with_what_routing_knows(runtime):
    case_id, number = new_case()

    consume(runtime, case_routed(case_id, number))

    row = case_row(runtime, case_id)
    assert row["registered"] is False
    assert row["status"] == "routed"
    assert row["receiving_unit"] == "city-org"
    assert row["category"] == "demolition_compensation"
    assert row["due_at"] == ROUTED_DUE_AT
    assert row["received_at"] is None


def test_a_late_registration_keeps_the_routed_status_and_due_date(runtime):
    case_id, number = new_case()

    consume(runtime, case_routed(case_id, number))
    consume(runtime, case_registered(case_id, number))

    row = case_row(runtime, case_id)
    assert (row["status"], row["due_at"], row["registered"]) == ("routed", ROUTED_DUE_AT, True)
    assert row["received_at"] == RECEIVED_AT


def test_resolved_on_spot_in_either_order_gives_the_same_case(runtime):
    def run(order):
        case_id, number = new_case()
        events = [
            case_registered(case_id, number, status="resolved_on_spot"),
            case_resolved_on_spot(case_id, number),
        ]
        for index in order:
            consume(runtime, events[index])
        row = case_row(runtime, case_id)
        del row["case_id"], row["case_number"]
        return row

    in_order = run([0, 1])
    assert (in_order["status"], in_order["due_at"]) == ("resolved_on_spot", None)
    assert run([1, 0]) == in_order


def test_a_newer_routing_stays_in_force_when_an_older_one_arrives_late(runtime):
    case_id, number = new_case()
    later = ROUTED_AT + dt.timedelta(days=2)
    newer = case_routed(
        case_id,
        number,
        unit="lw",
        routed_at=later,
        due_at=ROUTED_DUE_AT + dt.timedelta(days=2),
        assignment_id="assignment-2",
    )
    older = case_routed(case_id, number, assignment_id="assignment-1")

    consume(runtime, newer)
    consume(runtime, older)

    row = case_row(runtime, case_id)
    assert (row["responsible_unit"], row["assignment_id"], row["routed_at"]) == (
        "lw",
        "assignment-2",
        later,
    )
    assert row["due_at"] == ROUTED_DUE_AT + dt.timedelta(days=2)
    assert len(timeline(runtime, case_id)) == 2


def test_the_timeline_orders_events_of_one_instant_by_event_id(runtime):
    case_id, number = new_case()
    first = visit_followed_up(case_id, number)
    second = visit_followed_up(case_id, number)

    consume(runtime, second)
    consume(runtime, first)

    assert [e[0] for e in timeline(runtime, case_id)] == sorted([first.event_id, second.event_id])


def test_fields_a_producer_adds_later_are_ignored(runtime):
    case_id, number = new_case()

    consume(runtime, case_registered(case_id, number, priority="high", new_block={"x": 1}))

    assert case_row(runtime, case_id)["status"] == "open"


# -- poison --------------------------------------------------------------------------------


def _invalid_events():
    case_id, number = new_case()
    return {
        "registered-without-case-id": case_registered(case_id, number, case_id=None),
        "registered-naive-time": case_registered(
            case_id, number, received_at="2026-12-15T17:05:00"
        ),
        "registered-unknown-status": case_registered(case_id, number, status="closed"),
        "registered-bad-unit": case_registered(case_id, number, unit="Not A Unit!"),
        "registered-subject-of-another-case": case_registered(
            case_id, number, case_id=str(uuid.uuid4())
        ),
        "routed-without-due-date": case_routed(case_id, number, due_at=None),
        "routed-bad-time": case_routed(case_id, number, routed_at="tomorrow"),
        # Instants with no place in UTC (year 1 east of it, year 9999 west of it) were an
        # OverflowError, retried until the delivery limit instead of refused at once.
        "routed-due-in-year-one": case_routed(case_id, number, due_at="0001-01-01T00:00:00+08:00"),
        "registered-in-year-9999": case_registered(
            case_id, number, received_at="9999-12-31T23:00:00-08:00"
        ),
        "resolved-without-time": case_resolved_on_spot(case_id, number, resolved_at=None),
        "visit-headcount-text": visit_registered(str(uuid.uuid4()), [], headcount="five"),
        "visit-case-ids-not-a-list": visit_registered(str(uuid.uuid4()), [], case_ids="x"),
        "followed-up-bad-number": visit_followed_up(case_id, "CITY ORG 42"),
    }


@pytest.mark.parametrize("name", list(_invalid_events()))
def test_invalid_data_is_poison_and_changes_nothing(runtime, name):
    event = _invalid_events()[name]

    with pytest.raises(PoisonMessage):
        consume(runtime, event)

    assert count(runtime, models.SupervisedCase) == 0
    assert count(runtime, models.TimelineEntry) == 0
    assert count(runtime, models.VisitRecord) == 0


def test_poison_names_the_bad_field(runtime):
    case_id, number = new_case()
    event = received(case_routed(case_id, number, due_at="soon"))

    with runtime.unit_of_work() as uow, pytest.raises(PoisonMessage, match="due_at"):
        handlers(runtime)["case.routed"](uow, event)
