"""The partner side of the broker: a queue ``partner.<unit>`` for each unit that reads by AMQP.

A partner copy is published with ``mandatory``, and the outbox marks it sent only
once it was routed into a queue: each active unit's queue must exist before
routing hands it a case. Declaring is idempotent, so seeding and every consumer
start declare them all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from eventbus import topology
from routing import directory


def declare_partner_queues(channel, unit_codes: Iterable[str]) -> list[str]:
    """Declare the partner queue of each unit; return the queue names."""
    return [topology.declare_partner_queue(channel, code) for code in unit_codes]


def consumer_setup(runtime) -> Callable[[object], None]:
    """Return the consumer's start-up step: declare the queues of the units that read them."""

    def declare(channel) -> None:
        with runtime.sessions() as session:
            codes = directory.queue_codes(session)
        declare_partner_queues(channel, codes)

    return declare
