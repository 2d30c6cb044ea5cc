"""Read a service's dead-letter queue and, after a fix, replay its messages.

A replayed message goes straight back to the service's own queue (through the
default exchange), not to ``nighttalk.events``, so other services do not see it
again; the consumer recognises the event by its CloudEvents type.
"""

from __future__ import annotations

from dataclasses import dataclass

import pika

from eventbus import names
from eventbus.connection import connect


@dataclass(frozen=True)
class DeadLetter:
    """What an operator needs to judge a dead message (never its body: it may hold PII)."""

    event_id: str | None
    event_type: str | None
    subject: str | None
    reason: str | None
    original_routing_key: str | None
    deaths: int


def _describe(properties: pika.BasicProperties) -> DeadLetter:
    headers = properties.headers or {}
    deaths = headers.get("x-death") or []
    first = deaths[0] if deaths else {}
    keys = first.get("routing-keys") or [None]

    def text(value):
        return value.decode() if isinstance(value, bytes) else value

    return DeadLetter(
        event_id=text(headers.get("ce-id")) or properties.message_id,
        event_type=text(headers.get("ce-type")),
        subject=text(headers.get("ce-subject")),
        reason=text(first.get("reason")) or text(headers.get("x-first-death-reason")),
        original_routing_key=text(keys[0]),
        deaths=sum(int(d.get("count", 1)) for d in deaths) or 1,
    )


def inspect(service: str, *, url: str | None = None, limit: int = 100) -> list[DeadLetter]:
    """List up to ``limit`` dead messages of a service, leaving them in the queue."""
    conn = connect(url)
    try:
        channel = conn.channel()
        found = []
        for _ in range(limit):
            method, properties, _body = channel.basic_get(names.dead_letter_queue(service))
            if method is None:
                break
            found.append(_describe(properties))
        # Nothing was acked: closing the channel puts every message back, in order.
        channel.close()
        return found
    finally:
        conn.close()


def replay(service: str, *, url: str | None = None, limit: int = 100) -> int:
    """Move up to ``limit`` dead messages back to the service's queue; return how many."""
    conn = connect(url)
    moved = 0
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        for _ in range(limit):
            method, properties, body = channel.basic_get(names.dead_letter_queue(service))
            if method is None:
                break
            headers = {
                k: v for k, v in (properties.headers or {}).items() if not k.startswith("x-")
            }
            properties.headers = headers
            channel.basic_publish(
                "", names.service_queue(service), body, properties, mandatory=True
            )
            channel.basic_ack(method.delivery_tag)  # only after the broker confirmed the copy
            moved += 1
        return moved
    finally:
        conn.close()
