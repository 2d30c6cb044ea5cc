"""The transactional outbox: write events with the state, publish them right after commit.

A row is marked sent only after the broker confirmed it. What a crash or a broker
outage leaves unsent, the relay publishes later. On PostgreSQL, rows are claimed
with ``FOR UPDATE SKIP LOCKED`` so a web worker and any number of relays never
publish the same row twice; on SQLite one relay runs and the write lock serialises.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import Engine, Table, and_, bindparam, func, insert, select, text, update
from sqlalchemy.orm import Session

from eventbus import names
from eventbus.envelope import OutgoingEvent
from eventbus.publisher import Publisher, PublishError, Unroutable

log = logging.getLogger(__name__)

BATCH = 100


def now() -> dt.datetime:
    """Return the current UTC time (one place, so tests and sweeps agree on it)."""
    return dt.datetime.now(dt.UTC)


def notify_channel(service: str) -> str:
    """Return the PostgreSQL LISTEN/NOTIFY channel that wakes a service's relay."""
    return f"nighttalk_outbox_{service}"


def add(session: Session, table: Table, event: OutgoingEvent) -> None:
    """Write an event into the outbox within the caller's transaction."""
    add_all(session, table, [event])


def add_all(session: Session, table: Table, events: Sequence[OutgoingEvent]) -> None:
    """Write events into the outbox, in order, with one statement in the caller's transaction."""
    if not events:
        return
    created_at = now()
    session.execute(
        insert(table),
        [
            {
                "event_id": event.event_id,
                "exchange": event.exchange,
                "routing_key": event.routing_key,
                "headers": event.headers,
                "body": event.body,
                "created_at": created_at,
            }
            for event in events
        ],
    )


def _event_of(row) -> OutgoingEvent:
    return OutgoingEvent(
        exchange=row.exchange,
        routing_key=row.routing_key,
        event_id=row.event_id,
        headers=dict(row.headers),
        body=bytes(row.body),
    )


_ASYNC_COMMIT = text("SET LOCAL synchronous_commit TO OFF")


# The statements of the hot path (publishing right after a commit), built once per table:
# building a statement and its cache key cost about as much as running it.
@functools.cache
def _take_in_hand(table: Table):
    """Return the mark as sent at ``at`` of the unsent rows with the given event ids (``ids``).

    One statement claims and marks: the rows stay locked until the publishing transaction
    ends, locked rows (a relay's) are skipped, and rows whose publish fails are unmarked
    before the commit. Returns the rows taken.
    """
    unsent = (
        select(table.c.position)
        .where(table.c.sent_at.is_(None), table.c.event_id.in_(bindparam("ids", expanding=True)))
        .with_for_update(skip_locked=True)
    )
    return (
        update(table)
        .where(table.c.position.in_(unsent.scalar_subquery()))
        .values(sent_at=bindparam("at"))
        .returning(table.c.position, table.c.event_id)
    )


@functools.cache
def _mark_sent(table: Table):
    """Return the mark of rows (``positions``) as sent at ``at``."""
    return (
        update(table)
        .where(table.c.position.in_(bindparam("positions", expanding=True)))
        .values(sent_at=bindparam("at"))
    )


class Batch(NamedTuple):
    """What one claim of outbox rows came to."""

    sent: int
    claimed: int
    last_position: int
    broker_unreachable: bool


class Outbox:
    """Publish a service's outbox rows: at once after a commit, or by sweeping."""

    def __init__(self, engine: Engine, table: Table, publisher: Publisher, service: str) -> None:
        self.engine = engine
        self.table = table
        self.publisher = publisher
        self.service = service

    def publish_committed(self, events: Sequence[OutgoingEvent]) -> int:
        """Publish the rows a transaction just committed; leave them to the relay on failure.

        Called on the hot path right after a commit, so it never waits for a broker that
        is known to be away: the rows stay unsent and the relay is woken instead. The
        events are in hand already, so only the rows' locks are read back.
        """
        if not events:
            return 0
        if not self.publisher.available():
            self._wake_relay()
            return 0
        sent = 0
        # In batches, so that a large commit (a supervision sweep's hundreds of firings)
        # publishes within the publisher's confirm bound, batch after batch.
        for start in range(0, len(events), BATCH):
            by_id = {event.event_id: event for event in events[start : start + BATCH]}
            batch = self._publish_in_hand(by_id)
            sent += batch.sent
            if batch.broker_unreachable:
                break
        if sent < len(events):
            self._wake_relay()
        return sent

    def sweep(self, older_than: dt.timedelta = dt.timedelta(0)) -> int:
        """Publish every unsent row created before ``now - older_than``; return how many.

        Pages forward by position, so rows that cannot be sent yet (unroutable) never
        hold back the rows behind them, however many there are.
        """
        total = 0
        after = 0  # positions start at 1
        while True:
            cutoff = now() - older_than
            condition = and_(self.table.c.created_at <= cutoff, self.table.c.position > after)
            batch = self._claim_and_publish(condition, limit=BATCH)
            total += batch.sent
            if batch.claimed < BATCH or batch.broker_unreachable:
                return total
            after = batch.last_position

    def backlog(self) -> tuple[int, float]:
        """Return the number of unsent rows and the age in seconds of the oldest."""
        with self.engine.connect() as conn:
            count, oldest = conn.execute(
                select(func.count(), func.min(self.table.c.created_at)).where(
                    self.table.c.sent_at.is_(None)
                )
            ).one()
        if not oldest:
            return 0, 0.0
        if oldest.tzinfo is None:  # SQLite hands back naive datetimes
            oldest = oldest.replace(tzinfo=dt.UTC)
        return count, max(0.0, (now() - oldest).total_seconds())

    def _publish_in_hand(self, by_id: dict[str, OutgoingEvent]) -> Batch:
        """Publish events just committed, in hand by id: their rows are taken, not read."""
        with self.engine.begin() as conn:
            self._commit_without_waiting(conn)
            taken = conn.execute(_take_in_hand(self.table), {"ids": list(by_id), "at": now()})
            rows = sorted(taken.all(), key=lambda row: row.position)
            if not rows:
                return Batch(0, 0, 0, False)
            sent, unreachable = self._publish(conn, rows, [by_id[r.event_id] for r in rows])
            unsent = [row.position for row in rows if row.position not in sent]
            if unsent:
                conn.execute(
                    update(self.table).where(self.table.c.position.in_(unsent)).values(sent_at=None)
                )
        return Batch(len(sent), len(rows), rows[-1].position, unreachable)

    def _claim_and_publish(self, condition, *, limit: int) -> Batch:
        """Claim unsent rows matching ``condition``, publish them in order, mark the sent ones."""
        t = self.table
        with self.engine.begin() as conn:
            self._commit_without_waiting(conn)
            rows = conn.execute(
                select(t)
                .where(t.c.sent_at.is_(None), condition)
                .order_by(t.c.position)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            if not rows:
                return Batch(0, 0, 0, False)
            sent, unreachable = self._publish(conn, rows, [_event_of(row) for row in rows])
            if sent:
                # Marked in the claiming transaction: a crash before this commit leaves the
                # rows unsent, to be published again (the same event ids, which consumers
                # recognise), never sent-but-unpublished.
                conn.execute(_mark_sent(t), {"positions": sorted(sent), "at": now()})
        return Batch(len(sent), len(rows), rows[-1].position, unreachable)

    def _commit_without_waiting(self, conn) -> None:
        if self.engine.dialect.name == "postgresql":
            # Losing the sent mark in a crash only republishes the rows (the same event
            # ids, which consumers recognise), so it need not wait for the disk: one flush
            # to disk per unit of work, not two.
            conn.execute(_ASYNC_COMMIT)

    def _publish(self, conn, rows, events: list[OutgoingEvent]) -> tuple[set[int], bool]:
        """Publish the claimed rows' events in order; return the positions taken by the
        broker (or nobody's to take) and whether the broker was out of reach."""
        t = self.table
        unreachable = False
        try:
            failures = self.publisher.publish_batch(events)
        except PublishError as exc:
            # The broker is out of reach: nothing was confirmed. Say so on the first
            # row (the one holding the others up) and leave them all to the next try.
            rows, events, failures = rows[:1], events[:1], [exc]
            unreachable = True
        sent: set[int] = set()
        for row, event, failure in zip(rows, events, failures, strict=True):
            if failure is None or (
                isinstance(failure, Unroutable) and event.routing_key in names.NO_REQUIRED_CONSUMER
            ):
                sent.add(row.position)  # taken, or an announcement nobody listens to
                continue
            # Unroutable (no queue bound yet) or nacked: this row stays unsent and the
            # others of the batch go on; the relay tries it again.
            conn.execute(
                update(t)
                .where(t.c.position == row.position)
                .values(attempts=t.c.attempts + 1, last_error=str(failure)[:500])
            )
            log.warning(
                "outbox publish failed",
                extra={
                    "event_id": event.event_id,
                    "routing_key": event.routing_key,
                    "error": str(failure),
                },
            )
        return sent, unreachable

    def _wake_relay(self) -> None:
        if self.engine.dialect.name != "postgresql":
            return
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    text("SELECT pg_notify(:channel, '')"),
                    {"channel": notify_channel(self.service)},
                )
        except Exception:  # noqa: BLE001 - waking is a courtesy; the relay sweeps anyway
            log.exception("could not wake the relay")
