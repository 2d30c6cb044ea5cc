"""A unit of work: one transaction holding the state change, its events and its inbox row."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.orm import Session

from eventbus import inbox, metrics, names, outbox
from eventbus.envelope import OutgoingEvent
from eventbus.outbox import Outbox

log = logging.getLogger(__name__)


class UnitOfWork:
    """Open a session; on commit write the outgoing events with it, then publish them at once.

    Use as a context manager; leaving without ``commit()`` rolls everything back.
    """

    def __init__(self, session_factory: Callable[[], Session], box: Outbox, inbox_table=None):
        self._session_factory = session_factory
        self._outbox = box
        self._inbox_table = inbox_table
        self._events: list[OutgoingEvent] = []
        self.session: Session

    def __enter__(self) -> UnitOfWork:
        self.session = self._session_factory()
        self._events = []
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            self.session.rollback()
        finally:
            self.session.close()

    def emit(self, event: OutgoingEvent) -> None:
        """Queue an event to be written to the outbox when this unit commits."""
        self._events.append(event)

    def claim_application(self, event_id: str, consumer: str, event_type: str) -> bool:
        """Record in this transaction that the consumer applies the event; False if it did."""
        return inbox.claim(self.session, self._inbox_table, event_id, consumer, event_type)

    def commit(self) -> list[str]:
        """Commit state and outbox rows together, then publish the rows; return their ids."""
        events, self._events = self._events, []
        outbox.add_all(self.session, self._outbox.table, events)
        self.session.commit()
        for event in events:
            if event.exchange == names.EVENTS_EXCHANGE:  # partner copies are not new facts
                metrics.EVENTS_PUBLISHED.labels(
                    self._outbox.service, names.routing_key_of(event.headers["ce-type"])
                ).inc()
        try:
            self._outbox.publish_committed(events)
        except Exception:  # noqa: BLE001 - the rows are committed; the relay will publish them
            log.exception("publishing right after commit failed; the relay will retry")
        return [event.event_id for event in events]
