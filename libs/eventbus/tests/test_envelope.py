"""The envelope is CloudEvents 1.0 binary mode that the official SDK reads back."""

import pika
import pytest
from cloudevents.core.bindings import rabbitmq

from eventbus import envelope, names, tracing


def test_build_is_binary_mode_readable_by_the_sdk():
    out = envelope.build(
        service="intake",
        routing_key="case.registered",
        subject="c-1",
        data={"case_number": "city-org-20261215-0001", "summary": "工资拖欠"},
    )
    props = out.properties()
    assert props.delivery_mode == 2
    assert props.message_id == out.event_id
    assert props.content_type == "application/json"
    event = rabbitmq.from_binary_event(
        rabbitmq.RabbitMQMessage(
            headers=props.headers, content_type=props.content_type, body=out.body
        )
    )
    assert event.get_type() == "nighttalk.case.registered.v1"
    assert event.get_source() == "/nighttalk/intake"
    assert event.get_subject() == "c-1"
    assert event.get_id() == out.event_id
    assert event.get_data() == {"case_number": "city-org-20261215-0001", "summary": "工资拖欠"}
    assert tracing.parse_trace_id(event.get_attributes()["traceparent"])


def test_decode_round_trip_keeps_trace():
    tracing.continue_trace("00-" + "ab" * 16 + "-" + "cd" * 8 + "-01")
    try:
        out = envelope.build(
            service="routing", routing_key="case.routed", subject="c-2", data={"a": 1}
        )
    finally:
        tracing.clear()
    got = envelope.decode(out.properties(), out.body, "case.routed")
    assert got.data == {"a": 1}
    assert got.type == names.event_type("case.routed")
    assert tracing.parse_trace_id(got.traceparent) == "ab" * 16


@pytest.mark.parametrize(
    "headers, content_type, body",
    [
        (None, "application/json", b'{"a": 1}'),  # not a CloudEvent
        (
            {"ce-id": "1", "ce-source": "/x", "ce-type": "t", "ce-specversion": "1.0"},
            "application/json",
            b"not json",
        ),
        (
            {"ce-id": "1", "ce-source": "/x", "ce-type": "t", "ce-specversion": "0.1"},
            "application/json",
            b"{}",
        ),
        (
            {"ce-id": "1", "ce-source": "/x", "ce-type": "t", "ce-specversion": "1.0"},
            "text/plain",
            b"{}",
        ),
        (
            {"ce-id": "1", "ce-source": "/x", "ce-type": "t", "ce-specversion": "1.0"},
            "application/json",
            b"[1, 2]",
        ),
    ],
)
def test_decode_refuses_poison(headers, content_type, body):
    props = pika.BasicProperties(headers=headers, content_type=content_type)
    with pytest.raises(envelope.PoisonMessage):
        envelope.decode(props, body)


def test_names():
    assert names.routing_key_of("nighttalk.case.routed.v1") == "case.routed"
    with pytest.raises(ValueError):
        names.routing_key_of("other.case.routed")
    assert names.partner_queue("lw-buwen") == "partner.lw-buwen"
