"""Supervision's consumer on the real broker: events applied, poison dead-lettered."""

from __future__ import annotations

import time
import uuid

import pika
import pytest
from supervision_samples import (
    ROUTED_DUE_AT,
    case_registered,
    case_routed,
    case_row,
    new_case,
    timeline,
)

from eventbus import names, testing
from supervision.handlers import handlers

DEADLINE = 20.0


@pytest.fixture
def consumer(runtime, amqp_url):
    """Run supervision's consumer on the test vhost in a thread until the test ends."""
    with testing.running_consumer(
        service="supervision",
        handlers=handlers(runtime),
        unit_of_work=runtime.unit_of_work,
        url=amqp_url,
    ) as running:
        yield running


def test_a_routed_case_shows_routings_due_date(consumer, runtime, amqp_url):
    case_id, number = new_case()

    testing.publish(amqp_url, case_registered(case_id, number), case_routed(case_id, number))

    row = testing.eventually(
        lambda: (r := case_row(runtime, case_id)) and r["due_at"] == ROUTED_DUE_AT and r,
        "the case with routing's due date",
    )
    assert (row["status"], row["responsible_unit"], row["registered"]) == (
        "routed",
        "lw-buwen",
        True,
    )
    assert [e[1] for e in timeline(runtime, case_id)] == ["case.registered", "case.routed"]


def _dead_letter_bodies(amqp_url: str, wanted: set[bytes]) -> set[bytes]:
    """Take messages from supervision.dead until every wanted body has been seen."""
    seen: set[bytes] = set()
    deadline = time.monotonic() + DEADLINE
    while not wanted <= seen and time.monotonic() < deadline:
        for _method, _properties, body in testing.get_messages(
            amqp_url, names.dead_letter_queue("supervision"), count=1, timeout=2.0
        ):
            seen.add(body)
    return seen & wanted


def test_poison_is_dead_lettered_and_the_next_event_still_applied(consumer, runtime, amqp_url):
    not_a_cloud_event = f'{{"poison": "{uuid.uuid4()}"}}'.encode()
    testing.publish_raw(
        amqp_url,
        names.EVENTS_EXCHANGE,
        "case.registered",
        not_a_cloud_event,
        pika.BasicProperties(content_type="application/json", delivery_mode=2),
    )
    bad_id, bad_number = new_case()
    invalid_data = case_registered(bad_id, bad_number, received_at="not a time")
    case_id, number = new_case()

    testing.publish(amqp_url, invalid_data, case_registered(case_id, number))

    testing.eventually(
        lambda: case_row(runtime, case_id), "the valid event applied after the poison"
    )
    assert _dead_letter_bodies(amqp_url, {not_a_cloud_event, invalid_data.body}) == {
        not_a_cloud_event,
        invalid_data.body,
    }
    assert case_row(runtime, bad_id) is None
