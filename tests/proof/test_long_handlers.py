"""Long handlers: a handler that runs longer than two heartbeats keeps its connection.

The eventbus consumer the services run, on the real broker (the module's own vhost) and
a real database, with ``AMQP_HEARTBEAT=2`` and handlers that sleep several heartbeats.
No service has such a handler on purpose, so the scenario gives the consumer one of its
own rather than slowing a real process down.

Must hold: the consumer opens one connection only (no reconnect, none logged) and the
broker shows its consumer on the queue during and after the handlers; each message is
applied and acked once — never redelivered, nothing left on the queue.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest
from proofkit import event_store, size
from sqlalchemy import Column, String, insert, select
from sqlalchemy.orm import sessionmaker

from eventbus import envelope, names
from eventbus.connection import connect
from eventbus.consumer import Consumer
from eventbus.outbox import Outbox
from eventbus.publisher import Publisher
from eventbus.unit_of_work import UnitOfWork

pytestmark = pytest.mark.proof

HEARTBEAT = 2  # seconds
HANDLER = size(3, 5) * HEARTBEAT  # seconds each handler sleeps: well past two heartbeats
MESSAGES = size(2, 4)
SERVICE = "prooflong"


def _on_the_queue(url: str) -> tuple[int, int]:
    """Return (messages ready, consumers) of the service's queue, as the broker counts them."""
    conn = connect(url)
    try:
        ok = conn.channel().queue_declare(names.service_queue(SERVICE), passive=True).method
        return ok.message_count, ok.consumer_count
    finally:
        conn.close()


@pytest.fixture
def store(make_database):
    effects = (Column("event_id", String(64), primary_key=True), Column("value", String(64)))
    with event_store(make_database, "proof_long", *effects) as tables:
        yield tables


def test_a_handler_longer_than_two_heartbeats_keeps_its_connection(
    proof, store, module_amqp_url, monkeypatch, caplog
):
    proof.row(
        "long handlers",
        done=f"{MESSAGES} events whose handler sleeps {HANDLER} s each, heartbeat "
        f"{HEARTBEAT} s (AMQP_HEARTBEAT), on the real broker and database",
        must_hold="one connection throughout (no reconnect), the broker shows the consumer; "
        "each event applied and acked once, never redelivered",
    )
    url = module_amqp_url
    engine, outbox_t, inbox_t, effects = store
    monkeypatch.setenv("AMQP_HEARTBEAT", str(HEARTBEAT))
    calls: list[tuple[str, int]] = []
    connections: list[int] = []  # the heartbeat each connection of the consumer negotiated

    def count_connection(channel):
        # What the broker agreed to: the scenario means nothing with a 30 s heartbeat.
        connections.append(channel.connection._impl.params.heartbeat)

    def slow(uow, event):
        calls.append((event.id, event.data["v"]))
        time.sleep(HANDLER)
        uow.session.execute(insert(effects).values(event_id=event.id, value=event.data["v"]))

    box = Outbox(engine, outbox_t, Publisher(url), SERVICE)
    ready = threading.Event()
    consumer = Consumer(
        service=SERVICE,
        handlers={"proof.slow": slow},
        unit_of_work=lambda: UnitOfWork(sessionmaker(engine), box, inbox_t),
        url=url,
        on_ready=ready.set,
        setup=count_connection,
        # Its statement watch too (on PostgreSQL): a long handler is not a long call.
        engine=engine,
    )
    assert consumer.heartbeat == HEARTBEAT  # read from AMQP_HEARTBEAT
    caplog.set_level(logging.INFO, logger="eventbus.consumer")
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        assert ready.wait(15), "consumer did not start"
        assert connections == [HEARTBEAT]
        sent = [
            envelope.build(service="proof", routing_key="proof.slow", subject="s", data={"v": n})
            for n in range(MESSAGES)
        ]
        conn = connect(url)
        channel = conn.channel()
        channel.confirm_delivery()
        for event in sent:
            channel.basic_publish(
                event.exchange, event.routing_key, event.body, event.properties(), mandatory=True
            )
        conn.close()

        started = time.monotonic()
        during = []
        deadline = started + MESSAGES * HANDLER + 30
        while len(_applied(engine, effects)) < MESSAGES and time.monotonic() < deadline:
            during.append(_on_the_queue(url)[1])
            time.sleep(HEARTBEAT / 2)
        took = time.monotonic() - started
        # Past the last ack, give a lost ack the time to show up as a redelivery.
        time.sleep(2 * HEARTBEAT)
        consumers_after = _on_the_queue(url)[1]
    finally:
        consumer.stop()
        thread.join(15)
        box.publisher.close()
    # With the consumer gone, an unacked message would be back on the queue.
    left = _on_the_queue(url)[0]

    reconnects = [
        r.getMessage()
        for r in caplog.records
        if r.name == "eventbus.consumer" and r.levelno >= logging.WARNING
    ]
    proof.figure("heartbeat negotiated (s)", connections[0])
    proof.figure("handler (s)", HANDLER)
    proof.figure("handler calls", len(calls))
    proof.figure("applied", len(_applied(engine, effects)))
    proof.figure("connections", len(connections))
    proof.figure("warnings logged", len(reconnects))
    proof.figure("all applied after (s)", round(took, 1))
    assert sorted(_applied(engine, effects)) == sorted(str(n) for n in range(MESSAGES))
    assert sorted(v for _, v in calls) == list(range(MESSAGES))  # each handled once
    assert reconnects == []
    assert connections == [HEARTBEAT]
    assert during and set(during) == {1}
    assert consumers_after == 1
    assert left == 0


def _applied(engine, effects) -> list[str]:
    with engine.connect() as conn:
        return [r.value for r in conn.execute(select(effects))]
