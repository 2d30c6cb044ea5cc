"""Declare the exchanges and queues of the system; safe to run at every start.

Declarations are idempotent as long as the arguments do not change: RabbitMQ
refuses a redeclaration with other arguments (PRECONDITION_FAILED) rather than
silently keeping the old ones, which is what we want an operator to see.
"""

from __future__ import annotations

from collections.abc import Iterable

from eventbus import names

DEFAULT_DELIVERY_LIMIT = 5


def declare_exchanges(channel) -> None:
    """Declare the events, partners and dead-letter exchanges."""
    channel.exchange_declare(names.EVENTS_EXCHANGE, exchange_type="topic", durable=True)
    channel.exchange_declare(names.PARTNERS_EXCHANGE, exchange_type="topic", durable=True)
    channel.exchange_declare(names.DEAD_LETTER_EXCHANGE, exchange_type="direct", durable=True)


def declare_service_queue(
    channel,
    service: str,
    binding_keys: Iterable[str],
    *,
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
) -> str:
    """Declare a service's quorum queue, its dead-letter queue, and their bindings.

    A message rejected without requeue, or redelivered more than ``delivery_limit``
    times, is dead-lettered to ``<service>.dead``.
    """
    declare_exchanges(channel)
    dead = names.dead_letter_queue(service)
    channel.queue_declare(dead, durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_bind(dead, names.DEAD_LETTER_EXCHANGE, routing_key=service)
    queue = names.service_queue(service)
    channel.queue_declare(
        queue,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": delivery_limit,
            "x-dead-letter-exchange": names.DEAD_LETTER_EXCHANGE,
            "x-dead-letter-routing-key": service,
        },
    )
    for key in binding_keys:
        channel.queue_bind(queue, names.EVENTS_EXCHANGE, routing_key=key)
    return queue


def declare_partner_queue(channel, unit_code: str) -> str:
    """Declare a partner unit's quorum queue bound to ``<unit_code>.#``."""
    channel.exchange_declare(names.PARTNERS_EXCHANGE, exchange_type="topic", durable=True)
    queue = names.partner_queue(unit_code)
    channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_bind(queue, names.PARTNERS_EXCHANGE, routing_key=f"{unit_code}.#")
    return queue
