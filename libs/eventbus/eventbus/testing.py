"""Test helpers against the real broker and databases: a private vhost, a fresh database.

Each test session gets its own RabbitMQ virtual host, so tests never see the
queues of a system running on the same machine (``make run``), nor each other's.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import TypeVar

import pika
import sqlalchemy.event

from eventbus.connection import DEFAULT_AMQP_URL, connect
from eventbus.consumer import Consumer
from eventbus.envelope import OutgoingEvent


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@contextlib.contextmanager
def temporary_vhost(prefix: str = "nighttalk-test") -> Iterator[str]:
    """Create a vhost for the test session, yield its AMQP URL, delete it afterwards."""
    base = urllib.parse.urlparse(os.environ.get("TEST_AMQP_URL", DEFAULT_AMQP_URL))
    vhost = f"{prefix}-{secrets.token_hex(4)}"
    user = base.username or "guest"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        yield base._replace(path="/" + urllib.parse.quote(vhost, safe="")).geturl()
    finally:
        _rabbitmqctl("delete_vhost", vhost)


def postgres_admin_url() -> str:
    """Return the URL of a PostgreSQL database where test databases may be created."""
    return os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def temporary_database(backend: str, name: str, folder: str) -> Iterator[str]:
    """Yield the URL of a new empty database (a SQLite file or a PostgreSQL database)."""
    if backend == "sqlite":
        yield f"sqlite:///{os.path.join(folder, name + '.db')}"
        return
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(postgres_admin_url())
    dbname = f"nt_{name}_{secrets.token_hex(4)}".replace("-", "_")
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    try:
        yield admin.set(database=dbname).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


T = TypeVar("T")


def eventually(
    probe: Callable[[], T],
    what: str = "the condition",
    *,
    timeout: float = 20.0,
    interval: float = 0.05,
) -> T:
    """Return ``probe()``'s first truthy answer, asking again until ``timeout`` seconds.

    For tests that wait on another thread or process (a consumer, a relay, the broker):
    at the deadline it fails, naming ``what`` it waited for and the last answer.
    """
    deadline = time.monotonic() + timeout
    while True:
        answer = probe()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what} (last answer {answer!r})")
        time.sleep(interval)


@contextlib.contextmanager
def reads_of(engine, table: str) -> Iterator[list[str]]:
    """Collect the SELECT statements that read ``table`` through ``engine`` in the block.

    For tests that pin how often a path queries a table (a count, not a timing).
    """
    reads: list[str] = []
    names_it = re.compile(rf"\b(FROM|JOIN)\s+{re.escape(table)}\b", re.IGNORECASE)

    def note(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and names_it.search(statement):
            reads.append(statement)

    sqlalchemy.event.listen(engine, "before_cursor_execute", note)
    try:
        yield reads
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", note)


@contextlib.contextmanager
def transaction_endings(engine) -> Iterator[list[str]]:
    """Collect how each transaction through ``engine`` ends in the block: "commit" or
    "rollback", in order.

    For tests that pin that a read ends in COMMIT (``Runtime.reading``): psycopg forgets
    the statements it prepared at every ROLLBACK.
    """
    endings: list[str] = []

    def on_commit(_conn) -> None:
        endings.append("commit")

    def on_rollback(_conn) -> None:
        endings.append("rollback")

    sqlalchemy.event.listen(engine, "commit", on_commit)
    sqlalchemy.event.listen(engine, "rollback", on_rollback)
    try:
        yield endings
    finally:
        sqlalchemy.event.remove(engine, "commit", on_commit)
        sqlalchemy.event.remove(engine, "rollback", on_rollback)


@contextlib.contextmanager
def running_consumer(*, timeout: float = 20.0, **settings) -> Iterator[Consumer]:
    """Run a :class:`Consumer` made with ``settings`` in a thread until the block ends.

    As a service's consumer process runs it; the block starts once it consumes, and the
    test fails if it does not start or does not stop within ``timeout`` seconds.
    """
    ready = threading.Event()
    consumer = Consumer(on_ready=ready.set, **settings)
    thread = threading.Thread(
        target=consumer.run, name=f"{settings['service']}-consumer", daemon=True
    )
    thread.start()
    try:
        assert ready.wait(timeout), "the consumer did not start"
        yield consumer
    finally:
        consumer.stop()
        thread.join(timeout)
    assert not thread.is_alive(), "the consumer did not stop"


def publish(url: str, *events: OutgoingEvent) -> None:
    """Publish events as a service's relay does: persistent, mandatory, confirmed."""
    conn = connect(url)
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        for event in events:
            channel.basic_publish(
                event.exchange, event.routing_key, event.body, event.properties(), mandatory=True
            )
    finally:
        conn.close()


def get_messages(url: str, queue: str, *, count: int, timeout: float = 20.0):
    """Take ``count`` messages from a queue (acking them), waiting up to ``timeout`` seconds.

    Returns a list of (method, properties, body); fewer if the time ran out.
    """
    conn = connect(url)
    received = []
    try:
        channel = conn.channel()
        deadline = time.monotonic() + timeout
        for method, properties, body in channel.consume(queue, inactivity_timeout=0.5):
            if method is not None:
                channel.basic_ack(method.delivery_tag)
                received.append((method, properties, body))
            if len(received) >= count or time.monotonic() > deadline:
                break
        channel.cancel()
    finally:
        conn.close()
    return received


def queue_depth(url: str, queue: str) -> int:
    """Return how many messages wait in a queue (ready, not unacked)."""
    conn = connect(url)
    try:
        return conn.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        conn.close()


def publish_raw(
    url: str,
    exchange: str,
    routing_key: str,
    body: bytes,
    properties: pika.BasicProperties | None = None,
) -> None:
    """Publish an arbitrary message (e.g. a poison one) with confirms."""
    conn = connect(url)
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            exchange,
            routing_key,
            body,
            properties or pika.BasicProperties(delivery_mode=2),
            mandatory=True,
        )
    finally:
        conn.close()
