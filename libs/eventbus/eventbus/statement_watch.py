"""Notice a database call that gets no answer for too long, and break its link.

libpq has no read timeout. A link that takes the bytes and answers nothing (a black hole:
a hung proxy or middlebox, a half-dead route) leaves a statement waiting until the link
heals, and TCP's own checks (keepalives, a user timeout) never fire when something on the
way keeps acknowledging. A consumer stuck so would neither say so nor move on.

:class:`StatementWatch` records when each call to the database starts and ends — every
statement, commit, rollback and the pool's pre-ping — by wrapping those methods of one
engine's dialect (SQLAlchemy's events cover statements, not the others). The consumer's
connection thread, which wakes twice a second anyway, asks it to end calls older than the
bound. It first asks the server to cancel the statement (libpq's cancel request, over a
link of its own): a server that answers ends it, the call fails with QueryCanceled and the
link stays good. Only a call still unanswered a moment later has its link broken: the
socket is shut down, the call fails at once with an OperationalError, and SQLAlchemy
discards the connection. Breaking the link alone would leave the server's backend running
the statement, holding its locks and its uncommitted rows: a statement waiting on a lock
went on waiting, and each retry of its event then waited on the rows the one before held.
Either way the consumer retries the event in place.

A wait on a row lock need not reach the bound: the watched engine's sessions have a
``lock_timeout`` of half the bound, so the server itself ends such a wait
(LockNotAvailable).

A long handler is not a long call: time spent between statements does not count.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import threading
import time
from typing import Any

import sqlalchemy.event
from sqlalchemy import Engine

log = logging.getLogger(__name__)


def _socket_fd(dbapi_connection: Any) -> int | None:
    """Return the file descriptor of a DBAPI connection's socket (psycopg 3, psycopg2)."""
    pgconn = getattr(dbapi_connection, "pgconn", None)
    if pgconn is not None:
        return pgconn.socket
    fileno = getattr(dbapi_connection, "fileno", None)
    return fileno() if callable(fileno) else None


def _ask_the_server_to_cancel(dbapi_connection: Any) -> None:
    """Send a cancel request for the connection's running statement (psycopg 3, psycopg2)."""
    try:
        cancel_safe = getattr(dbapi_connection, "cancel_safe", None)
        if cancel_safe is not None:
            cancel_safe(timeout=5.0)
        else:
            dbapi_connection.cancel()
    except Exception as exc:  # noqa: BLE001 - the link is broken next if this did not help
        log.info("cancel request failed", extra={"error": type(exc).__name__})


class StatementWatch:
    """Time every database call of an engine; end one that takes too long."""

    def __init__(self, engine: Engine, bound: float) -> None:
        self.bound = bound
        # How long a call may stay unanswered after its cancel request before its link is
        # broken: a server that answers ends it in milliseconds.
        self.grace = min(5.0, bound / 2)
        self._lock = threading.Lock()
        # id(DBAPI connection) -> (when the call began, the DBAPI connection)
        self._calls: dict[int, tuple[float, Any]] = {}
        # id(DBAPI connection) -> (when its call began, when its cancel was asked)
        self._cancelled: dict[int, tuple[float, float]] = {}
        lock_timeout_ms = max(1, int(bound * 500))

        def wait_for_locks_less_than_the_bound(dbapi_connection, _record) -> None:
            # On connect, before SQLAlchemy opens a transaction; the driver's own cursor.
            autocommit = dbapi_connection.autocommit
            dbapi_connection.autocommit = True
            try:
                cursor = dbapi_connection.cursor()
                cursor.execute(f"SET lock_timeout = {lock_timeout_ms}")
                cursor.close()
            finally:
                dbapi_connection.autocommit = autocommit

        sqlalchemy.event.listen(engine, "connect", wait_for_locks_less_than_the_bound)
        engine.dispose()  # links pooled before the watch reconnect with it
        dialect = engine.dialect
        # Instance attributes: this engine's dialect only, not the dialect class.
        for name in ("do_execute", "do_executemany", "do_execute_no_params"):
            setattr(dialect, name, self._timed(getattr(dialect, name), lambda c, *_: c.connection))
        for name in ("do_commit", "do_rollback", "do_ping"):
            setattr(dialect, name, self._timed(getattr(dialect, name), lambda c, *_: c))

    def _timed(self, call, connection_of):
        @functools.wraps(call)
        def timed(first, *args, **kwargs):
            connection = connection_of(first)
            key = id(connection)
            with self._lock:
                self._calls[key] = (time.monotonic(), connection)
            try:
                return call(first, *args, **kwargs)
            finally:
                with self._lock:
                    self._calls.pop(key, None)
                    self._cancelled.pop(key, None)

        return timed

    def break_overdue(self) -> list[float]:
        """End every call older than the bound; return how long those whose link broke waited.

        A call past the bound is first cancelled on the server (in a thread of its own: a
        cancel request opens a link, which may wait on a dead route); one still unanswered
        ``grace`` seconds later has its link shut down.
        """
        now = time.monotonic()
        with self._lock:
            overdue = [
                (key, began, connection)
                for key, (began, connection) in self._calls.items()
                if now - began > self.bound
            ]
            to_cancel, to_break = [], []
            for key, began, connection in overdue:
                asked = self._cancelled.get(key)
                if asked is None or asked[0] != began:
                    self._cancelled[key] = (began, now)
                    to_cancel.append((now - began, connection))
                elif now - asked[1] > self.grace:
                    to_break.append((now - began, connection))
            # Shut the links down while no call can end: a call that ended since it was
            # read above would have left its socket to the pool (or its descriptor to
            # another link), which this would break. Shutting a socket down never blocks.
            broken = [waited for waited, connection in to_break if _shut_down(connection)]
        for waited, connection in to_cancel:
            log.warning(
                "database call unanswered; cancelling it", extra={"waited_s": round(waited, 2)}
            )
            threading.Thread(
                target=_ask_the_server_to_cancel, args=(connection,), daemon=True
            ).start()
        return [round(waited, 2) for waited in broken]


def _shut_down(connection: Any) -> bool:
    """Shut down a DBAPI connection's socket; return whether it was done."""
    fd = _socket_fd(connection)
    if fd is None or fd < 0:
        return False
    # A duplicate of the descriptor: shutdown acts on the socket itself, and the driver
    # keeps its own descriptor to close as usual.
    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as link:
        link.shutdown(socket.SHUT_RDWR)
        return True
    return False
