"""Notice a database call that gets no answer for too long, and break its link.

libpq has no read timeout. A link that takes the bytes and answers nothing (a black hole:
a hung proxy or middlebox, a half-dead route) leaves a statement waiting until the link
heals, and TCP's own checks (keepalives, a user timeout) never fire when something on the
way keeps acknowledging. A consumer stuck so would neither say so nor move on.

:class:`StatementWatch` records when each call to the database starts and ends — every
statement, commit, rollback and the pool's pre-ping — by wrapping those methods of one
engine's dialect (SQLAlchemy's events cover statements, not the others). The consumer's
connection thread, which wakes twice a second anyway, asks it to break the links of calls
older than the bound: it shuts the socket down, the waiting call fails at once with an
OperationalError, SQLAlchemy discards the connection, and the consumer retries the event
in place as for any database outage.

A long handler is not a long call: time spent between statements does not count.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import threading
import time
from typing import Any

from sqlalchemy import Engine


def _socket_fd(dbapi_connection: Any) -> int | None:
    """Return the file descriptor of a DBAPI connection's socket (psycopg 3, psycopg2)."""
    pgconn = getattr(dbapi_connection, "pgconn", None)
    if pgconn is not None:
        return pgconn.socket
    fileno = getattr(dbapi_connection, "fileno", None)
    return fileno() if callable(fileno) else None


class StatementWatch:
    """Time every database call of an engine; break the link of one that takes too long."""

    def __init__(self, engine: Engine, bound: float) -> None:
        self.bound = bound
        self._lock = threading.Lock()
        # id(DBAPI connection) -> (when the call began, the DBAPI connection)
        self._calls: dict[int, tuple[float, Any]] = {}
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

        return timed

    def break_overdue(self) -> list[float]:
        """Shut down the link of every call older than the bound; return how long each waited."""
        now = time.monotonic()
        with self._lock:
            overdue = [
                (now - began, connection)
                for began, connection in self._calls.values()
                if now - began > self.bound
            ]
        broken = []
        for waited, connection in overdue:
            fd = _socket_fd(connection)
            if fd is None or fd < 0:
                continue
            # A duplicate of the descriptor: shutdown acts on the socket itself, and the
            # driver keeps its own descriptor to close as usual.
            with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as link:
                link.shutdown(socket.SHUT_RDWR)
                broken.append(round(waited, 2))
        return broken
