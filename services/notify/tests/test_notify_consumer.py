"""notify's consumer on the real broker: events published on nighttalk.events become receipts."""

from __future__ import annotations

import time

import pytest
from notify_sample_events import UNIT_EMAIL, Visit, case_routed, supervision_event, unit_changed
from sqlalchemy import select

from eventbus import names, testing
from notify import models

DEADLINE = 20.0


def wait_for_status(runtime, case_id: str, status: str) -> models.Notification:
    """Poll the database until the case's receipt has ``status``, or fail at the deadline."""
    deadline = time.monotonic() + DEADLINE
    seen = None
    while time.monotonic() < deadline:
        with runtime.sessions() as session:
            seen = session.scalars(
                select(models.Notification).where(models.Notification.case_id == case_id)
            ).first()
        if seen is not None and seen.status == status:
            return seen
        time.sleep(0.1)
    pytest.fail(f"receipt of {case_id} not {status} in time; last seen: {seen and seen.status}")


def test_contact_then_case_over_the_broker_ends_pending(consumer, runtime, amqp_url):
    visit = Visit()
    case_event = visit.case_registered()

    testing.publish(amqp_url, visit.contact_recorded(), case_event)

    receipt = wait_for_status(runtime, visit.case_ids[0], models.PENDING)
    assert receipt.event_id == case_event.event_id
    assert receipt.case_number == visit.case_numbers[0]


def test_case_then_contact_over_the_broker_ends_pending(consumer, runtime, amqp_url):
    visit = Visit()

    testing.publish(amqp_url, visit.case_registered())
    wait_for_status(runtime, visit.case_ids[0], models.AWAITING_CONTACT)
    testing.publish(amqp_url, visit.contact_recorded())

    wait_for_status(runtime, visit.case_ids[0], models.PENDING)


def test_invalid_event_is_dead_lettered(consumer, runtime, amqp_url):
    visit = Visit()
    data = visit.case_data()
    del data["case_number"]
    poison = visit.case_registered(data=data)

    testing.publish(amqp_url, poison)

    dead = testing.get_messages(
        amqp_url, names.dead_letter_queue("notify"), count=1, timeout=DEADLINE
    )
    assert [props.message_id for _m, props, _b in dead] == [poison.event_id]
    with runtime.sessions() as session:
        stored = session.scalars(
            select(models.Notification).where(models.Notification.case_id == visit.case_ids[0])
        ).first()
    assert stored is None


def test_routing_events_over_the_broker_reach_the_unit(consumer, runtime, amqp_url):
    """notify's queue is bound to routing's and supervision's keys, not only intake's."""
    visit = Visit()

    testing.publish(
        amqp_url,
        unit_changed("lw-guokeng", email=UNIT_EMAIL),
        case_routed(visit, "lw-guokeng"),
        supervision_event("case.overdue", visit, "lw-guokeng"),
    )

    deadline = time.monotonic() + DEADLINE
    seen: set = set()
    want = {("assignment", "email", models.PENDING), ("overdue", "email", models.PENDING)}
    while time.monotonic() < deadline and not want <= seen:
        with runtime.sessions() as session:
            seen = {
                (n.kind, n.channel, n.status)
                for n in session.scalars(
                    select(models.Notification).where(
                        models.Notification.case_id == visit.case_ids[0]
                    )
                )
            }
        time.sleep(0.1)
    assert want <= seen
