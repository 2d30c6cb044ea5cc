"""Write and read CloudEvents 1.0 in binary content mode over AMQP 0-9-1.

The attributes travel as ``ce-`` headers and the JSON data as the body, as the
official SDK's RabbitMQ binding lays them out; we only add the AMQP properties
the design fixes (persistent delivery, ``message_id`` = ``ce-id``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

import pika
from cloudevents.core.bindings import rabbitmq as ce_rabbitmq
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.v1.event import CloudEvent

from eventbus import names, tracing

JSON = "application/json"


class PoisonMessage(Exception):
    """A message that no retry can make valid: not a CloudEvent, or data we cannot read."""


@dataclass(frozen=True)
class OutgoingEvent:
    """An event ready to publish: where it goes and its encoded headers and body."""

    exchange: str
    routing_key: str
    event_id: str
    headers: dict[str, str]
    body: bytes

    def properties(self) -> pika.BasicProperties:
        """Return the AMQP properties of the binary-mode message."""
        return pika.BasicProperties(
            headers=dict(self.headers),
            content_type=JSON,
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=self.event_id,
        )


@dataclass(frozen=True)
class ReceivedEvent:
    """A decoded CloudEvent as a consumer sees it."""

    id: str
    type: str
    source: str
    subject: str | None
    time: dt.datetime | None
    traceparent: str | None
    data: dict[str, Any]
    routing_key: str = ""
    extensions: dict[str, Any] = field(default_factory=dict)


def build(
    *,
    service: str,
    routing_key: str,
    subject: str,
    data: dict[str, Any],
    version: int = 1,
    exchange: str = names.EVENTS_EXCHANGE,
    amqp_routing_key: str | None = None,
    event_id: str | None = None,
    time: dt.datetime | None = None,
    traceparent: str | None = None,
) -> OutgoingEvent:
    """Encode an integration event as a binary-mode CloudEvent.

    ``routing_key`` names the event (``case.routed``) and gives its type; the message
    is published with ``amqp_routing_key`` when that differs (a partner copy is
    published as ``<unit>.case.routed``).
    """
    event_id = event_id or str(uuid.uuid4())
    event = CloudEvent(
        attributes={
            "id": event_id,
            "source": names.source_of(service),
            "type": names.event_type(routing_key, version),
            "specversion": "1.0",
            "subject": subject,
            "time": time or dt.datetime.now(dt.UTC),
            "datacontenttype": JSON,
            "traceparent": traceparent or tracing.new_traceparent(tracing.current_trace_id()),
        },
        data=data,
    )
    message = ce_rabbitmq.to_binary_event(event)
    return OutgoingEvent(
        exchange=exchange,
        routing_key=amqp_routing_key or routing_key,
        event_id=event_id,
        headers=message.headers,
        body=message.body,
    )


def _text(value: Any) -> str:
    # pika hands long-string header values over as bytes when they are not UTF-8 clean.
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def decode(properties: pika.BasicProperties, body: bytes, routing_key: str = "") -> ReceivedEvent:
    """Decode a binary-mode CloudEvent with the official SDK, or raise PoisonMessage."""
    headers = {k: _text(v) for k, v in (properties.headers or {}).items()}
    if "ce-id" not in {k.lower() for k in headers}:
        raise PoisonMessage("not a CloudEvent: no ce-id header")
    if properties.content_type and not properties.content_type.startswith(JSON):
        raise PoisonMessage(f"unexpected content type {properties.content_type!r}")
    try:
        event = ce_rabbitmq.from_binary_event(
            ce_rabbitmq.RabbitMQMessage(
                headers=headers, content_type=properties.content_type or JSON, body=body
            )
        )
    except (BaseCloudEventException, ValueError, TypeError) as exc:
        raise PoisonMessage(f"invalid CloudEvent: {exc}") from exc
    data = event.get_data()
    if not isinstance(data, dict):
        raise PoisonMessage("CloudEvent data is not a JSON object")
    attributes = event.get_attributes()
    known = {"id", "type", "source", "specversion", "subject", "time", "datacontenttype"}
    return ReceivedEvent(
        id=event.get_id(),
        type=event.get_type(),
        source=event.get_source(),
        subject=event.get_subject(),
        time=event.get_time(),
        traceparent=attributes.get("traceparent"),
        data=data,
        routing_key=routing_key,
        extensions={k: v for k, v in attributes.items() if k not in known},
    )
