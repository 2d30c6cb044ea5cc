"""Publish events with publisher confirms and ``mandatory``, so a publish either lands or fails.

``publish_batch`` sends a batch of messages and then waits once for all their confirms,
so a batch costs one round trip (and one broker disk write), not one per message; it
reports per message whether the broker took it, returned it as unroutable, or nacked
it, and the caller (the outbox) marks only the taken ones sent. ``publish`` is a batch
of one that raises.

pika's BlockingChannel waits for each confirm in turn and has no way to wait for many,
so the channel's confirm mode is driven here through its underlying channel (the
same callbacks BlockingChannel itself registers) and the wait through BlockingChannel's
own loop; both are wrapped in :class:`_Confirms`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import pika
import pika.exceptions
import pika.spec

from eventbus import topology
from eventbus.connection import ThreadLocalConnection, deadline
from eventbus.envelope import OutgoingEvent

log = logging.getLogger(__name__)


class PublishError(Exception):
    """The broker did not take the message: unroutable, nacked, or unreachable."""


class Unroutable(PublishError):
    """No queue is bound for the message's routing key; the broker returned it."""


class _Confirms:
    """A channel in confirm mode: what the broker said of each message published on it."""

    def __init__(self, channel) -> None:
        self.channel = channel
        self._last_tag = 0
        self._pending: set[int] = set()  # delivery tags published, not yet confirmed
        self._outcomes: dict[int, str] = {}  # delivery tag -> "ack" | "nack", until read
        self._returned: set[str] = set()  # message ids the broker returned (unroutable)
        selected = []
        impl = channel._impl  # noqa: SLF001 - see the module docstring
        impl.confirm_delivery(
            ack_nack_callback=self._on_confirm, callback=lambda _frame: selected.append(True)
        )
        channel._flush_output(lambda: bool(selected))  # noqa: SLF001
        impl.add_on_return_callback(self._on_return)

    def _on_confirm(self, frame) -> None:
        method = frame.method
        outcome = "ack" if isinstance(method, pika.spec.Basic.Ack) else "nack"
        # Confirms come in any order (an unroutable message is confirmed at once, a
        # routed one once the queue has it), and a ``multiple`` one settles every
        # message still waiting up to its tag, whatever was settled in between.
        if method.multiple:
            settled = [tag for tag in self._pending if tag <= method.delivery_tag]
        else:
            settled = [method.delivery_tag] if method.delivery_tag in self._pending else []
        for tag in settled:
            self._pending.discard(tag)
            self._outcomes[tag] = outcome

    def _on_return(self, _channel, _method, properties, _body) -> None:
        # A returned message is confirmed (acked) right after its basic.return.
        self._returned.add(properties.message_id)

    def publish(self, events: Sequence[OutgoingEvent]) -> list[PublishError | None]:
        """Publish events, wait once for all their confirms; return each one's failure."""
        impl = self.channel._impl  # noqa: SLF001
        tags = []
        for event in events:
            impl.basic_publish(
                exchange=event.exchange,
                routing_key=event.routing_key,
                body=event.body,
                properties=event.properties(),
                mandatory=True,
            )
            self._last_tag += 1
            self._pending.add(self._last_tag)
            tags.append(self._last_tag)
        self.channel._flush_output(lambda: all(t in self._outcomes for t in tags))  # noqa: SLF001
        results: list[PublishError | None] = []
        for event, tag in zip(events, tags, strict=True):
            outcome = self._outcomes.pop(tag)
            if event.event_id in self._returned:
                self._returned.discard(event.event_id)
                results.append(Unroutable(f"unroutable: {event.exchange} {event.routing_key}"))
            elif outcome == "nack":
                results.append(
                    PublishError(f"nacked by broker: {event.exchange} {event.routing_key}")
                )
            else:
                results.append(None)
        return results


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

    def _confirms(self) -> _Confirms:
        local = self._connections.local
        conn = self._connections.get()
        # The connection holder resets ``local.channel`` whenever it opens a new connection.
        confirms = getattr(local, "channel", None)
        if confirms is None or not confirms.channel.is_open:
            channel = conn.channel()
            topology.declare_exchanges(channel)  # idempotent; a fresh broker has none
            confirms = _Confirms(channel)
            local.channel = confirms
        return confirms

    def available(self) -> bool:
        """Return False while a recent failure says the broker is unreachable."""
        return time.monotonic() >= self._down_until

    def publish(self, event: OutgoingEvent) -> None:
        """Publish one event and wait for its confirm, or raise PublishError."""
        failure = self.publish_batch([event])[0]
        if failure is not None:
            raise failure

    def publish_batch(self, events: Sequence[OutgoingEvent]) -> list[PublishError | None]:
        """Publish events in order and wait for all their confirms at once.

        Return, for each event, None if the broker took it, or why not (:class:`Unroutable`
        or a nack). Raise PublishError if the broker cannot be reached at all. A connection
        the broker dropped while idle (missed heartbeats between two web requests) is only
        found out on use: the batch is then sent again once on a new connection.
        """
        events = list(events)
        if not events:
            return []
        struck = None
        for attempt in (1, 2):
            try:
                confirms = self._confirms()
                with deadline(
                    self._connections.get(),
                    self._confirm_timeout,
                    f"no publisher confirm within {self._confirm_timeout} s",
                ) as struck:
                    return confirms.publish(events)
            except Exception as exc:  # noqa: BLE001 - pika's connector errors are not AMQPErrors
                self._connections.discard()
                # A link that swallowed a publish is not an idle connection the broker
                # dropped: a second try would only wait again, on a new handshake.
                if attempt == 2 or (struck is not None and struck.is_set()):
                    self._down_until = time.monotonic() + self._retry_after
                    raise PublishError(
                        f"broker unreachable: {exc.__class__.__name__}: {exc}"
                    ) from exc
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close this thread's connection."""
        self._connections.close()
