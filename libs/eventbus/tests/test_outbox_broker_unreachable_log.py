"""What the outbox logs while the broker is out of reach: when it starts, now and then, and
when it is back (docs/operations.md, "Outbox backlog")."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import MetaData, create_engine, func, select
from sqlalchemy.orm import sessionmaker

from eventbus import envelope, names, outbox, topology
from eventbus.connection import connect
from eventbus.outbox import Outbox
from eventbus.publisher import Publisher
from eventbus.tables import add_event_tables

DEAD_BROKER = "amqp://guest:guest@127.0.0.1:1/%2F"


@pytest.fixture
def store(make_database):
    metadata = MetaData()
    outbox_t, _inbox_t = add_event_tables(metadata)
    engine = create_engine(make_database("eventbus"))
    metadata.create_all(engine)
    yield engine, outbox_t
    engine.dispose()


class _Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _lines(caplog):
    """The outbox's lines about the broker, as (level, message, reason) since the last clear."""
    found = [
        (r.levelname, r.getMessage(), getattr(r, "reason", None))
        for r in caplog.records
        if r.name == "eventbus.outbox"
    ]
    caplog.clear()
    return found


def test_an_unreachable_broker_is_logged_when_it_starts_then_once_a_minute_and_at_recovery(
    store, amqp_url, caplog, monkeypatch
):
    engine, outbox_t = store
    clock = _Clock()
    monkeypatch.setattr(outbox, "_clock", clock, raising=False)
    caplog.set_level(logging.INFO, logger="eventbus.outbox")
    event = envelope.build(service="tests", routing_key="thing.waits", subject="s", data={})
    with sessionmaker(engine)() as session:
        outbox.add(session, outbox_t, event)
        session.commit()
    box = Outbox(engine, outbox_t, Publisher(DEAD_BROKER), "tests")

    assert box.sweep() == 0
    [(level, message, reason)] = _lines(caplog)
    assert (level, message, reason) == ("WARNING", "outbox publish failed", "broker unreachable")

    # The relay tries again every few seconds: not a line each time.
    for seconds in (5, 10, 30, 59):
        clock.now = 1000.0 + seconds
        assert box.sweep() == 0
    assert _lines(caplog) == []

    # Still failing a minute after the first line: said again, louder, once.
    clock.now = 1061.0
    assert box.sweep() == 0
    clock.now = 1065.0
    assert box.sweep() == 0
    assert _lines(caplog) == [("ERROR", "outbox publish failed", "broker unreachable")]

    # The broker is back: one line says so, and then nothing more about it.
    conn = connect(amqp_url)
    channel = conn.channel()
    topology.declare_exchanges(channel)
    channel.queue_declare("t.unreachable", durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_purge("t.unreachable")
    channel.queue_bind("t.unreachable", names.EVENTS_EXCHANGE, routing_key="thing.waits")
    conn.close()
    box.publisher = Publisher(amqp_url)
    clock.now = 1070.0
    assert box.sweep() == 1
    assert _lines(caplog) == [("INFO", "outbox publish recovered", None)]
    with sessionmaker(engine)() as session:
        outbox.add(
            session,
            outbox_t,
            envelope.build(service="tests", routing_key="thing.waits", subject="t", data={}),
        )
        session.commit()
    assert box.sweep() == 1
    assert _lines(caplog) == []
    with engine.connect() as c:
        assert c.execute(select(func.count()).where(outbox_t.c.sent_at.is_(None))).scalar() == 0


def test_the_unreachable_line_names_the_reason_and_the_held_event_not_its_data(
    store, caplog, monkeypatch
):
    engine, outbox_t = store
    monkeypatch.setattr(outbox, "_clock", _Clock(), raising=False)
    caplog.set_level(logging.INFO, logger="eventbus.outbox")
    phone = "13912345678"
    event = envelope.build(
        service="tests", routing_key="thing.waits", subject="s", data={"phone": phone}
    )
    with sessionmaker(engine)() as session:
        outbox.add(session, outbox_t, event)
        session.commit()
    box = Outbox(engine, outbox_t, Publisher(DEAD_BROKER), "tests")
    box.sweep()
    [record] = [r for r in caplog.records if r.name == "eventbus.outbox"]
    assert record.reason == "broker unreachable"
    assert record.error.startswith("broker unreachable: ")
    assert "Connection refused" in record.error  # pika's reason, which its own text leaves out
    assert record.event_id == event.event_id
    assert record.service == "tests"
    assert phone not in repr(vars(record))
