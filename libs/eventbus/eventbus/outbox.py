"""The transactional outbox: write events with the state, publish them right after commit.

A row is marked sent only after the broker confirmed it. What a crash or a broker
outage leaves unsent, the relay publishes later. The publish right after a commit
leaves the marks to :class:`SentMarks`, which writes them together a moment later
(on PostgreSQL, off the publishing thread), so a commit costs one transaction, not
two. Relays claim rows with ``FOR UPDATE SKIP LOCKED`` so that any number of them
never publish the same row twice, and only take rows older than ``MARKS_SETTLE``, by
which time the publisher's marks are written; on SQLite one relay runs and the write
lock serialises.
"""

from __future__ import annotations

import atexit
import datetime as dt
import functools
import logging
import os
import threading
import time
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
    """Write events into the outbox, in order, with one statement in the caller's transaction.

    Through the session's connection, as the inbox's claim: a Core insert needs none of
    the ORM's execution path (a unit of work of claim, event and commit cost about 0.1 ms
    of CPU less so). Unlike ``Session.execute`` this does not flush the session's pending
    ORM changes first; its commit does, in the same transaction.
    """
    if not events:
        return
    created_at = now()
    session.connection().execute(
        _insert_rows(table),
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


@functools.cache
def _insert_rows(table: Table):
    """Return the insert of outbox rows, built once per table (see the statements below)."""
    return insert(table)


def _event_of(row) -> OutgoingEvent:
    return OutgoingEvent(
        exchange=row.exchange,
        routing_key=row.routing_key,
        event_id=row.event_id,
        headers=dict(row.headers),
        body=bytes(row.body),
    )


_ASYNC_COMMIT = text("SET LOCAL synchronous_commit TO OFF")


# Statements built once per table: building a statement and its cache key cost about as
# much as running it.
@functools.cache
def _mark_published(table: Table):
    """Return the mark as sent at ``at`` of the unsent rows with the given event ids (``ids``)."""
    return (
        update(table)
        .where(table.c.event_id.in_(bindparam("ids", expanding=True)), table.c.sent_at.is_(None))
        .values(sent_at=bindparam("at"))
    )


@functools.cache
def _mark_sent(table: Table):
    """Return the mark of rows (``positions``) as sent at ``at``."""
    return (
        update(table)
        .where(table.c.position.in_(bindparam("positions", expanding=True)))
        .values(sent_at=bindparam("at"))
    )


def _commit_without_waiting(conn) -> None:
    if conn.dialect.name == "postgresql":
        # Losing a sent mark in a crash only republishes the row (the same event id,
        # which consumers recognise), so it need not wait for the disk.
        conn.execute(_ASYNC_COMMIT)


# How long the marker gathers published rows before marking them with one statement.
MARK_LINGER = 0.25
# Rows younger than this may be published and waiting for their mark: relays leave them
# alone, whatever their grace and even when woken, so as not to publish them twice.
MARKS_SETTLE = 1.0
# A marking thread with nothing to mark for this long ends (the next publish starts one).
MARKER_IDLE = 30.0
# Marks kept for another try while the database is away, and how many tries (one a
# second); past either the relay's own publish marks the rows instead (a second copy of
# each event, which consumers recognise).
MARKS_KEPT = 10_000
MARK_TRIES = 30


class SentMarks:
    """Mark the rows of published events as sent: many at a time, off the publishing thread.

    The publish right after a commit hands its event ids here instead of opening a
    second transaction. On PostgreSQL a thread of this process gathers them for
    ``linger`` seconds and marks them with one statement; a mark lost with the process
    (kill -9 in that moment) or a database outage only lets the relay publish the row
    again after its grace: the same event id twice, which consumers recognise, never an
    event lost. SQLite (one writer: development and tests) marks at once.
    """

    def __init__(self, engine: Engine, table: Table, *, linger: float = MARK_LINGER) -> None:
        self.engine = engine
        self.table = table
        self.linger = linger
        self.background = engine.dialect.name == "postgresql"
        self._pending: list[str] = []
        self._changed = threading.Condition()
        self._owner: int | None = None  # the process whose thread marks (none after a fork)
        self._exit_hook = False
        self._writing = threading.Lock()  # held from taking marks until they are written
        self._failures = 0  # writes failed in a row

    def add(self, event_ids: Sequence[str]) -> None:
        """Mark these published events' rows as sent, now or a moment later."""
        if not event_ids:
            return
        if not self.background:
            self._write(list(event_ids))
            return
        with self._changed:
            self._pending.extend(event_ids)
            if self._owner != os.getpid():
                self._owner = os.getpid()
                threading.Thread(target=self._run, name="outbox-marks", daemon=True).start()
                if not self._exit_hook:
                    self._exit_hook = True
                    atexit.register(self.flush)
            self._changed.notify()

    def flush(self) -> None:
        """Write every mark gathered so far, or wait for the thread writing them (at exit,
        and for tests)."""
        with self._writing:
            with self._changed:
                ids, self._pending = self._pending, []
            if ids:
                self._write_or_keep(ids)

    def _run(self) -> None:
        while True:
            with self._changed:
                if not self._changed.wait_for(lambda: self._pending, MARKER_IDLE):
                    self._owner = None
                    return
            # Off the publishing path: what the next moment publishes joins this write.
            time.sleep(self.linger)
            with self._writing:
                with self._changed:
                    ids, self._pending = self._pending, []
                written = not ids or self._write_or_keep(ids)
            if not written:
                time.sleep(1.0)  # the database is away: try again in a while

    def _write_or_keep(self, ids: list[str]) -> bool:
        try:
            self._write(ids)
        except Exception as exc:  # noqa: BLE001 - the marks are kept; the relay covers them anyway
            self._failures += 1
            # The class only: a database error's text may quote the statement's values.
            error = type(exc).__name__
            with self._changed:
                keep = self._failures < MARK_TRIES and len(self._pending) + len(ids) <= MARKS_KEPT
                if keep:
                    self._pending[:0] = ids
            if keep:
                log.warning("outbox sent marks not written; trying again", extra={"error": error})
            else:
                log.warning(
                    "outbox sent marks given up; the relay publishes those rows again",
                    extra={"error": error, "rows": len(ids)},
                )
                self._failures = 0
            return False
        self._failures = 0
        return True

    def _write(self, ids: list[str]) -> None:
        with self.engine.begin() as conn:
            _commit_without_waiting(conn)
            at, mark = now(), _mark_published(self.table)
            for start in range(0, len(ids), BATCH):
                conn.execute(mark, {"ids": ids[start : start + BATCH], "at": at})


# While the broker is out of reach, the outbox says so when it starts, then at most this
# often (the relay tries again every few seconds), and once when it is reached again.
UNREACHABLE_LOG_EVERY = 60.0


def _clock() -> float:
    """Return the monotonic clock the outage lines are paced by (one place, for tests)."""
    return time.monotonic()


def _unreachable_text(exc: PublishError) -> str:
    """Return the publisher's "broker unreachable" text, with pika's reason where its own
    text is empty (a refused connection: the socket error is only in its arguments)."""
    text, cause = str(exc), exc.__cause__
    if cause is not None and not str(cause) and cause.args:
        text += "; ".join(str(arg) or repr(arg) for arg in cause.args)
    return text


class _Outage:
    """Whether this process's outbox finds the broker out of reach, and what it said of it.

    The first failed try logs a warning, a try still failing ``UNREACHABLE_LOG_EVERY``
    after the last line an error (at most one a minute, however often the relay or the
    web requests try), and the first publish the broker takes again one line of recovery.
    """

    def __init__(self, service: str) -> None:
        self.service = service
        self._lock = threading.Lock()
        self._since: float | None = None  # when the first failed try of this outage was
        self._said = 0.0  # when the last line about it was written
        self._tries = 0  # failed tries in this outage

    def failed(self, exc: Exception, events: Sequence[OutgoingEvent]) -> None:
        with self._lock:
            at = _clock()
            self._tries += 1
            if self._since is None:
                self._since, level = at, logging.WARNING
            elif at - self._said >= UNREACHABLE_LOG_EVERY:
                level = logging.ERROR
            else:
                return
            self._said = at
            tries, lasting = self._tries, at - self._since
        log.log(
            level,
            "outbox publish failed",
            extra={
                "service": self.service,
                "reason": "broker unreachable",
                # The connection error: pika's and the socket's words, no event data.
                "error": str(exc)[:500],
                "event_id": events[0].event_id,  # the row holding up the others
                "routing_key": events[0].routing_key,
                "tries": tries,
                "failing_seconds": round(lasting, 1),
            },
        )

    def reached(self) -> None:
        if self._since is None:  # nearly always: no lock taken on the publishing path
            return
        with self._lock:
            if self._since is None:
                return
            tries, lasting = self._tries, _clock() - self._since
            self._since, self._tries = None, 0
        log.info(
            "outbox publish recovered",
            extra={"service": self.service, "tries": tries, "failing_seconds": round(lasting, 1)},
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
        self.marks = SentMarks(engine, table)
        self._outage = _Outage(service)

    def publish_committed(self, events: Sequence[OutgoingEvent]) -> int:
        """Publish the rows a transaction just committed; leave them to the relay on failure.

        Called on the hot path right after a commit, so it never waits for a broker that
        is known to be away: the rows stay unsent and the relay is woken instead. The
        events are in hand already: nothing is read back, and the rows are marked by
        :class:`SentMarks` (no transaction of its own here). Relays take only rows older
        than ``MARKS_SETTLE``, so they do not publish these again meanwhile.
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
            taken, failed, unreachable = self._publish(events[start : start + BATCH])
            self.marks.add([event.event_id for event in taken])
            sent += len(taken)
            if failed:
                with self.engine.begin() as conn:
                    self._record_failures(conn, failed)
            if unreachable:
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

    def _claim_and_publish(self, condition, *, limit: int) -> Batch:
        """Claim unsent rows matching ``condition``, publish them in order, mark the sent ones."""
        t = self.table
        with self.engine.begin() as conn:
            _commit_without_waiting(conn)
            rows = conn.execute(
                select(t)
                .where(t.c.sent_at.is_(None), condition)
                .order_by(t.c.position)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            if not rows:
                return Batch(0, 0, 0, False)
            position = {row.event_id: row.position for row in rows}
            taken, failed, unreachable = self._publish([_event_of(row) for row in rows])
            self._record_failures(conn, failed)
            if taken:
                # Marked in the claiming transaction: a crash before this commit leaves the
                # rows unsent, to be published again (the same event ids, which consumers
                # recognise), never sent-but-unpublished.
                conn.execute(
                    _mark_sent(t),
                    {"positions": sorted(position[e.event_id] for e in taken), "at": now()},
                )
        return Batch(len(taken), len(rows), rows[-1].position, unreachable)

    def _publish(
        self, events: list[OutgoingEvent]
    ) -> tuple[list[OutgoingEvent], list[tuple[OutgoingEvent, Exception]], bool]:
        """Publish events in order; return those taken by the broker (or nobody's to take),
        those it refused with why, and whether the broker was out of reach."""
        try:
            failures = self.publisher.publish_batch(events)
        except PublishError as exc:
            # The broker is out of reach: nothing was confirmed. Say so on the first
            # event (the one holding the others up) and leave them all to the next try.
            failure = PublishError(_unreachable_text(exc))
            self._outage.failed(failure, events)
            return [], [(events[0], failure)], True
        self._outage.reached()
        taken, failed = [], []
        for event, failure in zip(events, failures, strict=True):
            if failure is None or (
                isinstance(failure, Unroutable) and event.routing_key in names.NO_REQUIRED_CONSUMER
            ):
                taken.append(event)  # taken, or an announcement nobody listens to
                continue
            # Unroutable (no queue bound yet) or nacked: this row stays unsent and the
            # others of the batch go on; the relay tries it again.
            failed.append((event, failure))
            log.warning(
                "outbox publish failed",
                extra={
                    "service": self.service,
                    "reason": "unroutable" if isinstance(failure, Unroutable) else "nacked",
                    "event_id": event.event_id,
                    "routing_key": event.routing_key,
                    "error": str(failure),
                },
            )
        return taken, failed, False

    def _record_failures(self, conn, failed: list[tuple[OutgoingEvent, Exception]]) -> None:
        t = self.table
        for event, failure in failed:
            conn.execute(
                update(t)
                .where(t.c.event_id == event.event_id)
                .values(attempts=t.c.attempts + 1, last_error=str(failure)[:500])
            )

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
