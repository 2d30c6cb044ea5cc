"""Open pika connections from ``AMQP_URL``, one per thread and process.

pika connections are not thread-safe and do not survive a fork, so nothing here
hands a connection from one thread or process to another: each holder checks the
pid and thread that made it, and makes a new one where they differ.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

import pika
import pika.exceptions

DEFAULT_AMQP_URL = "amqp://guest:guest@localhost:5672/%2F"
DEFAULT_HEARTBEAT = 30


def amqp_url() -> str:
    """Return the broker URL from the environment."""
    return os.environ.get("AMQP_URL", DEFAULT_AMQP_URL)


def heartbeat_timeout() -> int:
    """Return the heartbeat timeout in seconds from ``AMQP_HEARTBEAT`` (default 30)."""
    raw = os.environ.get("AMQP_HEARTBEAT", "")
    if not raw:
        return DEFAULT_HEARTBEAT
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"AMQP_HEARTBEAT must be a whole number of seconds >= 1, not {raw!r}")
    return value


def parameters(
    url: str | None = None, *, heartbeat: int | None = None, socket_timeout: float = 5.0
) -> pika.URLParameters:
    """Return connection parameters with heartbeats and timeouts that fail fast.

    A blocked connection (broker out of memory or disk) times out instead of
    hanging a web request or a relay forever.
    """
    heartbeat = heartbeat or heartbeat_timeout()
    params = pika.URLParameters(url or amqp_url())
    params.heartbeat = heartbeat
    params.blocked_connection_timeout = max(2 * heartbeat, 10)
    params.socket_timeout = socket_timeout
    params.stack_timeout = socket_timeout * 2
    params.connection_attempts = 1
    params.client_properties = {"connection_name": f"nighttalk pid={os.getpid()}"}
    return params


def connect(url: str | None = None, **kwargs) -> pika.BlockingConnection:
    """Open a blocking connection in the calling thread."""
    return pika.BlockingConnection(parameters(url, **kwargs))


def bytes_received(conn: pika.BlockingConnection) -> int:
    """Return how many bytes the connection has read from the broker so far."""
    # pika keeps the count on the adapter connection it wraps (its heartbeat checker reads it).
    return conn._impl.bytes_received  # noqa: SLF001


def abort(conn: pika.BlockingConnection, reason: str) -> None:
    """Drop a connection whose peer went silent, without a closing handshake.

    A polite close would wait for the broker's answer, which never comes through a
    dead link; this is what pika's own heartbeat checker does on a timeout.
    """
    conn._impl._terminate_stream(pika.exceptions.AMQPHeartbeatTimeout(reason))  # noqa: SLF001


@contextlib.contextmanager
def deadline(
    conn: pika.BlockingConnection, seconds: float, reason: str
) -> Iterator[threading.Event]:
    """Drop the connection if what runs inside has not finished within ``seconds``.

    pika's blocking calls (a publish waiting for its confirm) wait for as long as the
    connection lives, and a black-holed link lives until pika's heartbeat check gives
    up, twice the timeout and more; a timer on the connection's own loop bounds it.
    Yields an event that is set if the deadline struck.
    """
    struck = threading.Event()

    def strike() -> None:
        struck.set()
        abort(conn, reason)

    timer = conn._impl._adapter_call_later(seconds, strike)  # noqa: SLF001
    try:
        yield struck
    finally:
        conn._impl._adapter_remove_timeout(timer)  # noqa: SLF001


class ThreadLocalConnection:
    """Hold one connection per (process, thread), made in the thread that uses it."""

    def __init__(self, url: str | None = None, **kwargs) -> None:
        self._url = url
        self._kwargs = kwargs
        self._local = threading.local()

    def get(self) -> pika.BlockingConnection:
        """Return this thread's open connection, opening it if needed."""
        conn = getattr(self._local, "conn", None)
        pid = getattr(self._local, "pid", None)
        if conn is None or pid != os.getpid() or not conn.is_open:
            self._local.conn = connect(self._url, **self._kwargs)
            self._local.pid = os.getpid()
            self._local.channel = None  # what went with the old connection goes with it
        return self._local.conn

    def discard(self) -> None:
        """Drop this thread's connection after an error (closing it if still open)."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        self._local.channel = None
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            try:
                if conn.is_open:
                    conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail any way
                pass

    def close(self) -> None:
        """Close this thread's connection."""
        self.discard()

    @property
    def local(self) -> threading.local:
        """Per-thread storage that goes with the connection (e.g. its channel)."""
        return self._local
