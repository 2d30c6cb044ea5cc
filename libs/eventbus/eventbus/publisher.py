"""Publish events with publisher confirms and ``mandatory``, so a publish either lands or fails.

``publish`` returns only once the broker has confirmed the message into a queue;
an unroutable or nacked message raises, and the caller (the outbox) keeps it unsent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import pika
import pika.exceptions

from eventbus import topology
from eventbus.connection import ThreadLocalConnection, deadline
from eventbus.envelope import OutgoingEvent

log = logging.getLogger(__name__)


class PublishError(Exception):
    """The broker did not take the message: unroutable, nacked, or unreachable."""


class Unroutable(PublishError):
    """No queue is bound for the message's routing key; the broker returned it."""


class Publisher:
    """A confirming publisher bound to the calling thread's own connection."""

    def __init__(
        self, url: str | None = None, *, retry_after: float = 2.0, confirm_timeout: float = 5.0
    ) -> None:
        self._connections = ThreadLocalConnection(url)
        # A confirm normally takes milliseconds; on a black-holed link it would never come
        # and pika would wait for its heartbeat check (over a minute at the default).
        # Past this, the rows stay unsent for the relay and a web request answers.
        self._confirm_timeout = confirm_timeout
        # After a failed connect, web requests stop trying for a moment rather than
        # each paying a connect timeout while the broker is away; the relay catches up.
        self._retry_after = retry_after
        self._down_until = 0.0

    def _channel(self):
        local = self._connections.local
        conn = self._connections.get()
        channel = getattr(local, "channel", None)
        if channel is None or not channel.is_open:
            channel = conn.channel()
            topology.declare_exchanges(channel)  # idempotent; a fresh broker has none
            channel.confirm_delivery()
            local.channel = channel
        return channel

    def available(self) -> bool:
        """Return False while a recent failure says the broker is unreachable."""
        return time.monotonic() >= self._down_until

    def publish(self, event: OutgoingEvent) -> None:
        """Publish one event and wait for its confirm, or raise PublishError."""
        self.publish_many([event])

    def publish_many(self, events: Iterable[OutgoingEvent]) -> None:
        """Publish events in order, each confirmed, or raise PublishError at the first failure.

        A connection the broker dropped while idle (missed heartbeats between two web
        requests) is only found out on use: the publish is retried once on a new one.
        """
        events = list(events)
        struck = None
        for attempt in (1, 2):
            try:
                channel = self._channel()
                with deadline(
                    self._connections.get(),
                    self._confirm_timeout,
                    f"no publisher confirm within {self._confirm_timeout} s",
                ) as struck:
                    for event in events:
                        channel.basic_publish(
                            exchange=event.exchange,
                            routing_key=event.routing_key,
                            body=event.body,
                            properties=event.properties(),
                            mandatory=True,
                        )
                return
            except pika.exceptions.UnroutableError as exc:
                # The channel stays usable: the broker returned the message, nothing is
                # wrong with the connection. No queue is bound for this key yet.
                raise Unroutable(f"unroutable: {event.exchange} {event.routing_key}") from exc
            except pika.exceptions.NackError as exc:
                raise PublishError(
                    f"nacked by broker: {event.exchange} {event.routing_key}"
                ) from exc
            except Exception as exc:  # noqa: BLE001 - pika's connector errors are not AMQPErrors
                self._connections.discard()
                # A link that swallowed a publish is not an idle connection the broker
                # dropped: a second try would only wait again, on a new handshake.
                if attempt == 2 or (struck is not None and struck.is_set()):
                    self._down_until = time.monotonic() + self._retry_after
                    raise PublishError(
                        f"broker unreachable: {exc.__class__.__name__}: {exc}"
                    ) from exc

    def close(self) -> None:
        """Close this thread's connection."""
        self._connections.close()
