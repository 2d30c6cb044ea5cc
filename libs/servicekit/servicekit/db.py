"""Make a service's database engine: a SQLite file by default, PostgreSQL by URL."""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
from pathlib import Path

from sqlalchemy import Engine, MetaData, any_, bindparam, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session


def var_dir() -> Path:
    """Return the folder that holds local SQLite files (``NIGHTTALK_VAR_DIR``, default ``var``)."""
    return Path(os.environ.get("NIGHTTALK_VAR_DIR", "var")).resolve()


def database_url(service: str) -> str:
    """Return ``<SERVICE>_DATABASE_URL``, or a SQLite file under the var folder."""
    url = os.environ.get(f"{service.upper()}_DATABASE_URL")
    if url:
        return url
    folder = var_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / f'{service}.db'}"


CONNECT_TIMEOUT = 10  # seconds
# A pooled connection idle for this long is tested before it is handed out; one back
# from its last use a moment ago is not (under load, that is nearly every checkout).
PING_AFTER_IDLE = 1.0  # seconds


def make_engine(url: str, *, pre_ping: bool = True) -> Engine:
    """Create an engine tuned for several processes sharing one database.

    A statement's values never appear in an error's text (``hide_parameters``): a
    logged traceback would otherwise quote a visitor's data.

    ``pre_ping`` tests a pooled connection that sat idle for ``PING_AFTER_IDLE`` or
    longer before handing it out (one round trip), so that a connection the database
    dropped meanwhile (a restart, an idle timeout) is replaced before a request fails on it.
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
        _tune_sqlite(engine)
        return engine
    # A connection attempt into a dead link fails after 10 s and is retried, instead of
    # waiting for the link to heal (libpq waits forever without it).
    engine = create_engine(
        url,
        pool_size=5,
        max_overflow=5,
        connect_args={"connect_timeout": CONNECT_TIMEOUT},
        hide_parameters=True,
    )
    if pre_ping:
        _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: Engine) -> None:
    # SQLAlchemy's pool_pre_ping tests every checkout: a round trip per transaction, most
    # of them on a connection returned milliseconds before. This is the pessimistic
    # recipe of SQLAlchemy's pooling docs, skipped for connections used a moment ago.
    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection, record):
        if record is not None:
            record.info["checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection, record, _proxy):
        # A new connection has no check-in yet (its info is cleared when it is replaced).
        checked_in = record.info.get("checked_in")
        if checked_in is None or time.monotonic() - checked_in < PING_AFTER_IDLE:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # noqa: BLE001 - any failure means the connection is gone
            # The pool drops this connection and checks out (or opens) another.
            raise DisconnectionError() from exc


class Probe:
    """One check that a database answers, on a connection of its own, stoppable at any time.

    Readiness asks this rather than the pool: a pooled connection may hang on a database (or
    a network) gone silent, a full pool makes a checkout wait, and SQLite's engine begins
    with BEGIN IMMEDIATE, which queues behind a long write. :meth:`run` opens a connection
    (PostgreSQL: a connect timeout and a statement timeout of ``timeout``; SQLite: a busy
    timeout), runs one query that reads the database and closes the connection. Another
    thread may call :meth:`stop` meanwhile: PostgreSQL's socket is shut down, which ends a
    wait for an answer that will never come; SQLite's query is interrupted.
    """

    def __init__(self, engine: Engine, timeout: float):
        self.engine = engine
        self.timeout = timeout
        self._lock = threading.Lock()
        self._connection = None
        self._stopped = False

    def run(self) -> None:
        """Raise if the database cannot be reached or does not answer."""
        dialect = self.engine.dialect
        cargs, cparams = dialect.create_connect_args(self.engine.url)
        if dialect.name == "sqlite":
            cparams["timeout"] = self.timeout
            query = "PRAGMA schema_version"  # reads the file's header
        else:
            # libpq counts whole seconds, and takes less than 2 as 2.
            cparams["connect_timeout"] = max(2, math.ceil(self.timeout))
            options = (cparams.get("options") or "").strip()
            statement_timeout = f"-c statement_timeout={round(self.timeout * 1000)}"
            cparams["options"] = f"{options} {statement_timeout}".strip()
            query = "SELECT 1"
        connection = dialect.connect(*cargs, **cparams)
        try:
            with self._lock:
                if self._stopped:
                    raise TimeoutError("stopped before the query")
                self._connection = connection
            cursor = connection.cursor()
            cursor.execute(query)
            cursor.fetchall()
            cursor.close()
        finally:
            with self._lock:
                # From now on stop() leaves the connection alone: closing frees its socket,
                # whose number another connection may get.
                self._connection = None
            connection.close()

    def stop(self) -> None:
        """Make a running check fail at once (from any thread)."""
        with self._lock:
            self._stopped = True
            connection = self._connection
            if connection is None:
                return
            if hasattr(connection, "interrupt"):  # sqlite3
                connection.interrupt()
                return
            pgconn = getattr(connection, "pgconn", None)  # psycopg
            if pgconn is None:
                return
            try:
                fd = os.dup(pgconn.socket)
            except Exception:  # noqa: BLE001 - no socket: the connection is gone already
                return
            with socket.socket(fileno=fd) as sock, contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def insert_for(dialect: str):
    """Return the INSERT construct of a dialect by name; both know ON CONFLICT (upserts)."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _tune_sqlite(engine: Engine) -> None:
    # Several processes (web workers, consumer, relay) write the same file: WAL lets
    # readers go on while one writes, and BEGIN IMMEDIATE takes the write lock up
    # front, so two transactions never deadlock upgrading a read lock (where SQLite
    # would fail at once instead of waiting out the busy timeout).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


# Constraint and index names every service's migrations rely on: stable across dialects,
# so Alembic can drop and alter them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def service_metadata() -> MetaData:
    """Return a service's MetaData: the shared naming convention, the outbox and the inbox."""
    from eventbus.tables import add_event_tables

    metadata = MetaData(naming_convention=dict(NAMING_CONVENTION))
    add_event_tables(metadata)
    return metadata


def one_of(session: Session, column, values):
    """Return the SQL condition that ``column`` holds one of ``values``.

    On PostgreSQL one array parameter (``= ANY``), not a parameter per value: the
    statement's text is then the same however many values there are (a jurisdiction's
    units), so psycopg prepares it once per connection and the planner is not asked again
    on every request (at 1,000,000 cases, planning the board's two queries took 3 ms,
    running them 5 ms). SQLite: an IN list.
    """
    values = sorted(values)
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=postgresql.ARRAY(column.type)))
    return column.in_(values)
