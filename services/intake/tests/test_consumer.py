"""What intake learns back: the unit directory copy and each case's progress.

Handlers on a real database (duplicates, order, poison) and the consumer on the
real broker (applied, dead-lettered).
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from intake_samples import (
    CST,
    assignment_resolved,
    case_closed,
    case_routed,
    consume,
    unit_changed,
)

from eventbus import envelope, names, testing
from eventbus.envelope import PoisonMessage
from intake import models
from intake.handlers import handlers

ROUTED_AT = dt.datetime(2026, 11, 16, 9, 0, tzinfo=CST)
DUE_AT = dt.datetime(2026, 12, 20, 17, 0, tzinfo=CST)
RESOLVED_AT = dt.datetime(2026, 11, 25, 10, 0, tzinfo=CST)
CLOSED_AT = dt.datetime(2026, 11, 26, 10, 0, tzinfo=CST)


def routed_case(register) -> tuple[str, str]:
    case = register()["cases"][2]  # the demolition case, disposition route
    return case["case_id"], case["case_number"]


def shown(client, bearer, number) -> dict:
    r = client.get(f"/v1/cases/{number}", headers=bearer())
    assert r.status_code == 200
    return r.get_json()


def test_intake_binds_the_events_it_follows():
    assert set(handlers()) == {
        "unit.changed",
        "case.routed",
        "assignment.resolved",
        "assignment.extension_granted",
        "case.closed",
        "case.reopened",
    }


def test_a_case_moves_open_routed_resolved_closed(client, bearer, register, runtime):
    case_id, number = routed_case(register)
    assert shown(client, bearer, number)["status"] == "open"
    assignment = str(uuid.uuid4())
    consume(
        runtime,
        case_routed(
            case_id,
            number,
            "lw-buwen",
            routed_at=ROUTED_AT,
            due_at=DUE_AT,
            assignment_id=assignment,
        ),
    )
    case = shown(client, bearer, number)
    assert (case["status"], case["responsible_unit"]) == ("routed", "lw-buwen")
    assert dt.datetime.fromisoformat(case["due_at"]) == DUE_AT
    consume(runtime, assignment_resolved(case_id, number, "lw-buwen", assignment, at=RESOLVED_AT))
    assert shown(client, bearer, number)["status"] == "resolved"
    consume(runtime, case_closed(case_id, number, at=CLOSED_AT))
    case = shown(client, bearer, number)
    assert case["status"] == "closed"
    assert dt.datetime.fromisoformat(case["closed_at"]) == CLOSED_AT


def test_events_out_of_order_or_twice_leave_the_case_where_it_got_to(
    client, bearer, register, runtime
):
    case_id, number = routed_case(register)
    assignment = str(uuid.uuid4())
    routed = case_routed(case_id, number, "lw-buwen", routed_at=ROUTED_AT, assignment_id=assignment)
    closed = case_closed(case_id, number, at=CLOSED_AT)
    resolved = assignment_resolved(case_id, number, "lw-buwen", assignment, at=RESOLVED_AT)
    consume(runtime, closed, routed, resolved, routed, closed)
    case = shown(client, bearer, number)
    assert (case["status"], case["responsible_unit"]) == ("closed", "lw-buwen")
    assert case["resolved_at"] and case["routed_at"]


def test_a_transfer_names_the_new_unit_and_an_older_routing_does_not_undo_it(
    client, bearer, register, runtime
):
    case_id, number = routed_case(register)
    later = ROUTED_AT + dt.timedelta(days=2)
    consume(
        runtime,
        case_routed(case_id, number, "lw-guokeng", routed_at=later),
        case_routed(case_id, number, "lw-buwen", routed_at=ROUTED_AT),
        case_routed(case_id, number, "city-land", routed_at=later + dt.timedelta(1), role="co"),
    )
    assert shown(client, bearer, number)["responsible_unit"] == "lw-guokeng"


def test_a_co_handlers_answer_does_not_resolve_the_case(client, bearer, register, runtime):
    case_id, number = routed_case(register)
    consume(runtime, case_routed(case_id, number, "lw-buwen", routed_at=ROUTED_AT))
    consume(
        runtime,
        assignment_resolved(case_id, number, "city-land", str(uuid.uuid4()), at=RESOLVED_AT),
    )
    assert shown(client, bearer, number)["status"] == "routed"


def test_a_new_leads_answer_before_its_routing_resolves_the_case_when_it_comes(
    client, bearer, register, runtime
):
    case_id, number = routed_case(register)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    transferred_at = ROUTED_AT + dt.timedelta(days=2)
    consume(
        runtime,
        case_routed(case_id, number, "lw-buwen", routed_at=ROUTED_AT, assignment_id=first),
        assignment_resolved(case_id, number, "lw-guokeng", second, at=RESOLVED_AT),
    )
    assert shown(client, bearer, number)["status"] == "routed"  # not the lead it knows
    consume(
        runtime,
        case_routed(case_id, number, "lw-guokeng", routed_at=transferred_at, assignment_id=second),
    )
    case = shown(client, bearer, number)
    assert (case["status"], case["responsible_unit"]) == ("resolved", "lw-guokeng")
    assert dt.datetime.fromisoformat(case["resolved_at"]) == RESOLVED_AT


def test_a_routed_case_is_still_open_for_repeat_detection(client, bearer, register, runtime):
    case_id, number = routed_case(register)
    consume(runtime, case_routed(case_id, number, "lw-buwen", routed_at=ROUTED_AT))
    again = register(received_at="2026-11-15T20:00:00+08:00")
    assert again["cases"][2]["repeat_of"] == case_id


def test_unit_snapshots_apply_only_when_newer(runtime):
    consume(
        runtime,
        unit_changed("lw-buwen", "lw", revision=3, name="步文镇"),
        unit_changed("lw-buwen", "xc", revision=2, name="stale"),
        unit_changed("lw-buwen", "lw", revision=3, name="same revision again"),
    )
    with runtime.sessions() as session:
        unit = session.get(models.Unit, "lw-buwen")
        assert (unit.name, unit.parent, unit.revision) == ("步文镇", "lw", 3)
    consume(runtime, unit_changed("lw-buwen", "lw", revision=4, active=False))
    with runtime.sessions() as session:
        assert session.get(models.Unit, "lw-buwen").active is False


def test_an_event_about_a_case_intake_never_registered_is_ignored(runtime):
    consume(runtime, case_routed(str(uuid.uuid4()), "xx-20261115-0001", "lw", routed_at=ROUTED_AT))
    with runtime.sessions() as session:
        assert session.query(models.Case).count() == 0


@pytest.mark.parametrize(
    "event",
    [
        unit_changed("lw-buwen", "lw", revision="3"),
        unit_changed("Not A Unit", "lw"),
        unit_changed("lw-buwen", "lw", name=None),
        envelope.build(
            service="routing",
            routing_key="case.routed",
            subject="c-1",
            data={"case_id": "c-1", "assignment_id": "a", "unit": "lw", "routed_at": "soon"},
        ),
        envelope.build(
            service="routing",
            routing_key="case.routed",
            subject="another-case",
            data={
                "case_id": "c-1",
                "assignment_id": "a",
                "unit": "lw",
                "routed_at": ROUTED_AT.isoformat(),
            },
        ),
        envelope.build(
            service="supervision",
            routing_key="case.closed",
            subject="c-1",
            data={"case_id": "c-1", "occurred_at": "2026-11-26T10:00:00"},  # no offset
        ),
        envelope.build(
            service="routing",
            routing_key="assignment.resolved",
            subject="c-1",
            data={"case_id": "c-1", "unit": "lw", "occurred_at": RESOLVED_AT.isoformat()},
        ),
        envelope.build(
            service="routing",
            routing_key="assignment.extension_granted",
            subject="c-1",
            data={  # no new due date
                "case_id": "c-1",
                "assignment_id": "a",
                "unit": "lw",
                "occurred_at": RESOLVED_AT.isoformat(),
            },
        ),
    ],
)
def test_invalid_payloads_are_poison(runtime, event):
    with pytest.raises(PoisonMessage):
        consume(runtime, event)


# -- the consumer on the real broker ---------------------------------------------------


@pytest.fixture
def consumer(runtime, amqp_url):
    """Run intake's consumer on the test vhost in a thread until the test ends."""
    with testing.running_consumer(
        service="intake",
        handlers=handlers(runtime),
        unit_of_work=runtime.unit_of_work,
        url=amqp_url,
    ) as running:
        yield running


def test_the_consumer_applies_routing_events_and_dead_letters_poison(
    consumer, client, bearer, register, runtime, amqp_url
):
    case_id, number = routed_case(register)
    testing.publish(
        amqp_url,
        unit_changed("lw-buwen", "lw", revision=1),
        case_routed(case_id, number, "lw-buwen", routed_at=ROUTED_AT),
    )
    testing.eventually(
        lambda: shown(client, bearer, number)["status"] == "routed", "the case routed"
    )

    def copied():
        with runtime.sessions() as session:
            return session.get(models.Unit, "lw-buwen") is not None

    testing.eventually(copied, "the unit copied")
    poison = unit_changed("lw-buwen", "lw", revision="not a number")
    testing.publish(amqp_url, poison)
    dead = testing.get_messages(amqp_url, names.dead_letter_queue("intake"), count=1)
    assert [props.message_id for _, props, _ in dead] == [poison.event_id]
