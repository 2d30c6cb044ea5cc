"""The outbox and the consumer against the real RabbitMQ and a real database."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import threading
import time
from collections import Counter

import psycopg
import pytest
from sqlalchemy import Column, MetaData, String, Table, create_engine, func, insert, select
from sqlalchemy.orm import sessionmaker

from eventbus import envelope, names, outbox, relay, testing, topology
from eventbus.connection import connect
from eventbus.consumer import Consumer
from eventbus.outbox import Outbox
from eventbus.publisher import Publisher
from eventbus.tables import add_event_tables
from eventbus.unit_of_work import UnitOfWork


@pytest.fixture
def store(make_database):
    metadata = MetaData()
    outbox_t, inbox_t = add_event_tables(metadata)
    effects = Table(
        "effects",
        metadata,
        Column("event_id", String(64), primary_key=True),
        Column("value", String(64)),
    )
    engine = create_engine(make_database("eventbus"))
    metadata.create_all(engine)
    yield engine, outbox_t, inbox_t, effects
    engine.dispose()


def _bind_test_queue(url, queue, key):
    conn = connect(url)
    ch = conn.channel()
    topology.declare_exchanges(ch)
    ch.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    ch.queue_purge(queue)
    ch.queue_bind(queue, names.EVENTS_EXCHANGE, routing_key=key)
    conn.close()


def _unsent(engine, table):
    with engine.connect() as c:
        return c.execute(select(func.count()).where(table.c.sent_at.is_(None))).scalar_one()


def test_commit_publishes_at_once_and_marks_sent(store, amqp_url):
    engine, outbox_t, inbox_t, effects = store
    _bind_test_queue(amqp_url, "t.outbox", "thing.done")
    box = Outbox(engine, outbox_t, Publisher(amqp_url), "tests")
    with UnitOfWork(sessionmaker(engine), box, inbox_t) as uow:
        uow.session.execute(insert(effects).values(event_id="x", value="1"))
        uow.emit(
            envelope.build(service="tests", routing_key="thing.done", subject="s", data={"n": 1})
        )
        uow.commit()
    # On PostgreSQL by the marking thread, a moment later; on SQLite at once.
    testing.eventually(
        lambda: _unsent(engine, outbox_t) == 0, "every outbox row marked sent", timeout=5
    )
    got = testing.get_messages(amqp_url, "t.outbox", count=1, timeout=5)
    assert len(got) == 1
    assert got[0][1].headers["ce-type"] == "nighttalk.thing.done.v1"


def test_rollback_writes_and_publishes_nothing(store, amqp_url):
    engine, outbox_t, inbox_t, effects = store
    _bind_test_queue(amqp_url, "t.rollback", "thing.rolled")
    box = Outbox(engine, outbox_t, Publisher(amqp_url), "tests")
    with UnitOfWork(sessionmaker(engine), box, inbox_t) as uow:
        uow.emit(envelope.build(service="tests", routing_key="thing.rolled", subject="s", data={}))
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(outbox_t)).scalar_one() == 0
    assert testing.queue_depth(amqp_url, "t.rollback") == 0


def test_unroutable_is_not_marked_sent_and_the_sweep_sends_it_once_routable(store, amqp_url):
    engine, outbox_t, inbox_t, _ = store
    box = Outbox(engine, outbox_t, Publisher(amqp_url), "tests")
    with UnitOfWork(sessionmaker(engine), box, inbox_t) as uow:
        uow.emit(
            envelope.build(service="tests", routing_key="nobody.listens", subject="s", data={})
        )
        uow.commit()
    assert _unsent(engine, outbox_t) == 1
    with engine.connect() as c:
        row = c.execute(select(outbox_t)).one()
    assert row.attempts == 1 and "unroutable" in row.last_error
    _bind_test_queue(amqp_url, "t.late", "nobody.listens")
    assert box.sweep() == 1
    assert _unsent(engine, outbox_t) == 0
    assert len(testing.get_messages(amqp_url, "t.late", count=1, timeout=5)) == 1


def test_a_commit_larger_than_a_batch_is_published_batch_after_batch(store, amqp_url):
    engine, outbox_t, inbox_t, _ = store
    _bind_test_queue(amqp_url, "t.many", "thing.many")
    box = Outbox(engine, outbox_t, Publisher(amqp_url), "tests")
    count = 2 * outbox.BATCH + 7
    with UnitOfWork(sessionmaker(engine), box, inbox_t) as uow:
        for n in range(count):
            uow.emit(
                envelope.build(service="tests", routing_key="thing.many", subject=str(n), data={})
            )
        uow.commit()
    box.marks.flush()
    assert _unsent(engine, outbox_t) == 0
    assert len(testing.get_messages(amqp_url, "t.many", count=count, timeout=10)) == count


def test_the_sweep_pages_past_rows_that_cannot_be_sent(store, amqp_url):
    # More unroutable rows than one batch, then one that can go: a sweep that only ever
    # looked at the first batch would strand it behind them for good.
    engine, outbox_t, inbox_t, _ = store
    _bind_test_queue(amqp_url, "t.behind", "thing.behind")
    with sessionmaker(engine)() as session:
        outbox.add_all(
            session,
            outbox_t,
            [
                envelope.build(service="tests", routing_key="nobody.hears", subject=str(n), data={})
                for n in range(outbox.BATCH + 20)
            ]
            + [envelope.build(service="tests", routing_key="thing.behind", subject="x", data={})],
        )
        session.commit()
    box = Outbox(engine, outbox_t, Publisher(amqp_url), "tests")
    assert box.sweep() == 1
    assert _unsent(engine, outbox_t) == outbox.BATCH + 20
    assert len(testing.get_messages(amqp_url, "t.behind", count=1, timeout=5)) == 1


def test_an_announcement_nobody_listens_to_is_not_retried_forever(store, amqp_url):
    engine, outbox_t, inbox_t, _ = store
    box = Outbox(engine, outbox_t, Publisher(amqp_url), "tests")
    with UnitOfWork(sessionmaker(engine), box, inbox_t) as uow:
        for key in sorted(names.NO_REQUIRED_CONSUMER):
            uow.emit(envelope.build(service="tests", routing_key=key, subject="s", data={}))
        uow.emit(envelope.build(service="tests", routing_key="nobody.else", subject="s", data={}))
        uow.commit()
    box.marks.flush()
    assert _unsent(engine, outbox_t) == 1  # only the event someone must hear waits


def test_a_batch_the_broker_never_took_is_left_unsent_and_blamed_on_its_first_row(store, amqp_url):
    engine, outbox_t, inbox_t, _ = store
    dead = Outbox(engine, outbox_t, Publisher("amqp://guest:guest@127.0.0.1:1/%2F"), "tests")
    with UnitOfWork(sessionmaker(engine), dead, inbox_t) as uow:
        for n in range(3):
            uow.emit(
                envelope.build(service="tests", routing_key="thing.three", subject=str(n), data={})
            )
        uow.commit()
    with engine.connect() as c:
        rows = c.execute(select(outbox_t).order_by(outbox_t.c.position)).all()
    assert [row.sent_at for row in rows] == [None, None, None]
    assert [row.attempts for row in rows] == [1, 0, 0]
    assert "broker unreachable" in rows[0].last_error


def test_the_publish_after_commit_leaves_its_marks_to_one_later_write(store, amqp_url):
    """The hot path opens no second transaction; the marks are written together, once."""
    from sqlalchemy import event as sa_event

    engine, outbox_t, inbox_t, _ = store
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite marks at once, in the publishing thread")
    _bind_test_queue(amqp_url, "t.marked", "thing.marked")
    box = Outbox(engine, outbox_t, Publisher(amqp_url), "tests")
    box.marks.linger = 60.0  # the marking thread holds what it gathers until flushed
    begun = []
    sa_event.listen(engine, "begin", lambda conn: begun.append(conn))
    for n in range(3):
        with UnitOfWork(sessionmaker(engine), box, inbox_t) as uow:
            uow.emit(
                envelope.build(service="tests", routing_key="thing.marked", subject=str(n), data={})
            )
            uow.commit()
    assert len(begun) == 3  # one transaction per commit: none for the publish
    assert len(testing.get_messages(amqp_url, "t.marked", count=3, timeout=5)) == 3
    assert _unsent(engine, outbox_t) == 3
    # Meanwhile a relay leaves them alone: they are younger than its grace.
    assert box.sweep(older_than=dt.timedelta(seconds=2)) == 0
    before = len(begun)
    box.marks.flush()
    assert len(begun) == before + 1  # one write for the three marks
    assert _unsent(engine, outbox_t) == 0
    assert testing.queue_depth(amqp_url, "t.marked") == 0  # nothing published twice


def test_the_marking_thread_writes_what_it_gathers(store, amqp_url):
    engine, outbox_t, inbox_t, _ = store
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite marks at once, in the publishing thread")
    _bind_test_queue(amqp_url, "t.gathered", "thing.gathered")
    box = Outbox(engine, outbox_t, Publisher(amqp_url), "tests")
    with UnitOfWork(sessionmaker(engine), box, inbox_t) as uow:
        for n in range(5):
            uow.emit(
                envelope.build(
                    service="tests", routing_key="thing.gathered", subject=str(n), data={}
                )
            )
        uow.commit()
    testing.eventually(
        lambda: _unsent(engine, outbox_t) == 0, "every outbox row marked sent", timeout=5
    )
    assert box.marks._pending == []


def test_a_woken_relay_leaves_rows_awaiting_their_mark_and_takes_the_rest_soon(store, amqp_url):
    """Woken by a failed publish, a relay publishes what was left, not what is on its way."""
    engine, outbox_t, inbox_t, _ = store
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite has no NOTIFY to wake the relay, and marks at once")
    _bind_test_queue(amqp_url, "t.woken", "thing.woken")
    # A relay as its own process would run it: its own outbox and publisher, no grace asked
    # for, and an interval far longer than the test.
    stop = threading.Event()
    sweeping = threading.Thread(
        target=relay.run,
        args=(Outbox(engine, outbox_t, Publisher(amqp_url), "tests"), stop),
        kwargs={"interval": 60.0, "grace": 0},
        daemon=True,
    )
    sweeping.start()
    time.sleep(0.5)  # listening
    box = Outbox(engine, outbox_t, Publisher(amqp_url), "tests")
    with UnitOfWork(sessionmaker(engine), box, inbox_t) as uow:
        for n in range(2):
            uow.emit(
                envelope.build(service="tests", routing_key="thing.woken", subject=str(n), data={})
            )
        uow.commit()  # published; the sent marks follow a moment later
    with sessionmaker(engine)() as session:  # a row a failed publish left behind
        outbox.add(
            session,
            outbox_t,
            envelope.build(service="tests", routing_key="thing.woken", subject="left", data={}),
        )
        session.commit()
    box._wake_relay()  # noqa: SLF001 - as publish_committed does after a failure
    try:
        got = testing.get_messages(amqp_url, "t.woken", count=4, timeout=4)
    finally:
        stop.set()
        sweeping.join(10)
    assert sorted(props.headers["ce-subject"] for _, props, _ in got) == ["0", "1", "left"]
    assert _unsent(engine, outbox_t) == 0


def test_marks_the_database_refuses_are_kept_for_a_while_then_left_to_the_relay(
    store, monkeypatch, caplog
):
    engine, outbox_t, _, _ = store
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite marks at once, in the publishing thread")
    gone = create_engine(engine.url.set(database="nt_no_such_database"))
    marks = outbox.SentMarks(gone, outbox_t)
    monkeypatch.setattr(outbox, "MARK_TRIES", 2)
    marks._pending = ["a", "b"]
    marks.flush()
    assert marks._pending == ["a", "b"]  # kept for the next try
    marks.flush()
    assert marks._pending == []  # given up: the relay publishes those rows again
    assert [r.getMessage() for r in caplog.records if r.name == "eventbus.outbox"] == [
        "outbox sent marks not written; trying again",
        "outbox sent marks given up; the relay publishes those rows again",
    ]
    gone.dispose()


def test_broker_unreachable_leaves_rows_for_the_relay(store, amqp_url):
    engine, outbox_t, inbox_t, _ = store
    dead = Outbox(engine, outbox_t, Publisher("amqp://guest:guest@127.0.0.1:1/%2F"), "tests")
    with UnitOfWork(sessionmaker(engine), dead, inbox_t) as uow:
        uow.emit(envelope.build(service="tests", routing_key="thing.later", subject="s", data={}))
        uow.commit()  # the commit stands although the broker is away
    assert _unsent(engine, outbox_t) == 1
    count, age = dead.backlog()
    assert count == 1 and age >= 0
    _bind_test_queue(amqp_url, "t.later", "thing.later")
    relay = Outbox(engine, outbox_t, Publisher(amqp_url), "tests")
    assert relay.sweep() == 1
    assert len(testing.get_messages(amqp_url, "t.later", count=1, timeout=5)) == 1


class _Recorder:
    """Handlers that write one effect row per event, optionally slow or failing."""

    def __init__(self, effects, delay=0.0):
        self.effects = effects
        self.delay = delay
        self.calls = 0

    def __call__(self, uow, event):
        self.calls += 1
        if event.data.get("invalid"):
            raise envelope.PoisonMessage("invalid data")
        if self.delay:
            time.sleep(self.delay)
        uow.session.execute(insert(self.effects).values(event_id=event.id, value=event.data["v"]))


def _consumer(engine, outbox_t, inbox_t, url, service, handlers, **options) -> Consumer:
    """Return a consumer of ``service`` applying ``handlers`` on the test's store and broker."""
    box = Outbox(engine, outbox_t, Publisher(url), service)
    return Consumer(
        service=service,
        handlers=handlers,
        unit_of_work=lambda: UnitOfWork(sessionmaker(engine), box, inbox_t),
        url=url,
        **options,
    )


def _start(consumer):
    ready = threading.Event()
    consumer.on_ready = ready.set
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    assert ready.wait(15), "consumer did not start"
    return thread


def _publish(url, event):
    conn = connect(url)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish(
        event.exchange, event.routing_key, event.body, event.properties(), mandatory=True
    )
    conn.close()


def _effects(engine, effects):
    with engine.connect() as c:
        return [r.value for r in c.execute(select(effects).order_by(effects.c.value))]


def test_consumer_applies_once_dead_letters_poison_and_goes_on(store, amqp_url):
    engine, outbox_t, inbox_t, effects = store
    service = "svc1"
    recorder = _Recorder(effects)
    consumer = _consumer(engine, outbox_t, inbox_t, amqp_url, service, {"thing.happened": recorder})
    thread = _start(consumer)
    try:
        first = envelope.build(
            service="tests", routing_key="thing.happened", subject="s", data={"v": "a"}
        )
        _publish(amqp_url, first)
        _publish(amqp_url, first)  # a duplicate delivery of the same event
        testing.publish_raw(amqp_url, names.EVENTS_EXCHANGE, "thing.happened", b"not an event")
        _publish(
            amqp_url,
            envelope.build(
                service="tests", routing_key="thing.happened", subject="s", data={"invalid": True}
            ),
        )
        _publish(
            amqp_url,
            envelope.build(
                service="tests", routing_key="thing.happened", subject="s", data={"v": "b"}
            ),
        )
        testing.eventually(
            lambda: _effects(engine, effects) == ["a", "b"], "effects a and b applied"
        )
        dead = testing.get_messages(amqp_url, names.dead_letter_queue(service), count=2, timeout=10)
        assert sorted(body for _, _, body in dead) == sorted(
            [b"not an event", b'{"invalid": true}']
        )
        testing.eventually(
            lambda: testing.queue_depth(amqp_url, names.service_queue(service)) == 0,
            "the service's queue empty",
        )
    finally:
        consumer.stop()
        thread.join(10)
    assert _effects(engine, effects) == ["a", "b"]


def test_failing_handler_is_redelivered_until_the_delivery_limit(store, amqp_url):
    engine, outbox_t, inbox_t, effects = store
    service = "svc2"
    calls = []

    def broken(uow, event):
        calls.append(event.id)
        raise RuntimeError("a bug")

    consumer = _consumer(
        engine, outbox_t, inbox_t, amqp_url, service, {"thing.broken": broken}, delivery_limit=2
    )
    thread = _start(consumer)
    try:
        _publish(
            amqp_url,
            envelope.build(service="tests", routing_key="thing.broken", subject="s", data={}),
        )
        dead = testing.get_messages(amqp_url, names.dead_letter_queue(service), count=1, timeout=30)
        assert len(dead) == 1
        assert len(calls) == 3  # the first delivery and two redeliveries
    finally:
        consumer.stop()
        thread.join(10)


def test_long_handler_keeps_the_connection(store, amqp_url):
    """A handler longer than two heartbeats does not lose the connection or the ack."""
    engine, outbox_t, inbox_t, effects = store
    service = "svc3"
    recorder = _Recorder(effects, delay=5.0)
    consumer = _consumer(
        engine, outbox_t, inbox_t, amqp_url, service, {"thing.slow": recorder}, heartbeat=2
    )
    thread = _start(consumer)
    try:
        _publish(
            amqp_url,
            envelope.build(
                service="tests", routing_key="thing.slow", subject="s", data={"v": "slow"}
            ),
        )
        testing.eventually(
            lambda: _effects(engine, effects) == ["slow"], "the slow effect applied", timeout=20
        )
        # Acked on the same connection: nothing left, nothing redelivered.
        testing.eventually(
            lambda: testing.queue_depth(amqp_url, names.service_queue(service)) == 0,
            "the service's queue empty",
        )
        time.sleep(1)
        assert recorder.calls == 1
    finally:
        consumer.stop()
        thread.join(10)


def test_a_connection_dropped_while_idle_is_replaced_on_the_next_publish(store, amqp_url):
    import subprocess
    import urllib.parse

    engine, outbox_t, inbox_t, _ = store
    _bind_test_queue(amqp_url, "t.idle", "thing.idle")
    publisher = Publisher(amqp_url)
    publisher.publish(
        envelope.build(service="tests", routing_key="thing.idle", subject="s", data={})
    )
    vhost = urllib.parse.unquote(urllib.parse.urlparse(amqp_url).path[1:])
    subprocess.run(
        ["rabbitmqctl", "-q", "close_all_connections", "-p", vhost, "test: idle drop"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    time.sleep(0.5)  # let the close reach the client socket
    publisher.publish(
        envelope.build(service="tests", routing_key="thing.idle", subject="s", data={})
    )
    assert publisher.available()
    assert len(testing.get_messages(amqp_url, "t.idle", count=2, timeout=5)) == 2
    publisher.close()


def test_a_handler_constraint_error_is_not_taken_for_a_duplicate(store, amqp_url, caplog):
    """A handler's own constraint error is not taken for a duplicate: retried, then dead;
    logged by the constraint's name, without the values the database's message quotes."""
    engine, outbox_t, inbox_t, effects = store
    service = "svc4"
    phone = "13905961234"  # a visitor's phone as the clashing key

    def same_row(uow, event):
        uow.session.execute(insert(effects).values(event_id=phone, value=event.id))

    consumer = _consumer(
        engine, outbox_t, inbox_t, amqp_url, service, {"thing.clash": same_row}, delivery_limit=1
    )
    thread = _start(consumer)
    try:
        first = envelope.build(service="tests", routing_key="thing.clash", subject="s", data={})
        second = envelope.build(service="tests", routing_key="thing.clash", subject="s", data={})
        _publish(amqp_url, first)
        _publish(amqp_url, second)
        dead = testing.get_messages(amqp_url, names.dead_letter_queue(service), count=1, timeout=30)
        assert [props.message_id for _, props, _ in dead] == [second.event_id]
    finally:
        consumer.stop()
        thread.join(10)
    clashes = [r for r in caplog.records if r.getMessage() == "handler hit a constraint; requeued"]
    assert clashes
    for record in clashes:
        assert record.event_id == second.event_id
        assert phone not in logging.Formatter().format(record)
        if engine.dialect.name == "postgresql":
            assert record.constraint == "effects_pkey"


def test_dead_letters_are_listed_and_replayed_after_a_fix(store, amqp_url):
    from eventbus import dead_letters

    engine, outbox_t, inbox_t, effects = store
    service = "svc5"
    fixed = threading.Event()

    def picky(uow, event):
        if not fixed.is_set():
            raise envelope.PoisonMessage("not understood yet")
        uow.session.execute(insert(effects).values(event_id=event.id, value=event.data["v"]))

    consumer = _consumer(engine, outbox_t, inbox_t, amqp_url, service, {"thing.new": picky})
    thread = _start(consumer)
    try:
        event = envelope.build(
            service="tests", routing_key="thing.new", subject="c-9", data={"v": "z"}
        )
        _publish(amqp_url, event)
        dead_q = names.dead_letter_queue(service)
        testing.eventually(
            lambda: testing.queue_depth(amqp_url, dead_q) == 1, "one message dead-lettered"
        )
        [letter] = dead_letters.inspect(service, url=amqp_url)
        assert (letter.event_id, letter.subject, letter.reason) == (
            event.event_id,
            "c-9",
            "rejected",
        )
        assert letter.original_routing_key == "thing.new"
        assert testing.queue_depth(amqp_url, dead_q) == 1  # inspecting leaves it there
        fixed.set()
        assert dead_letters.replay(service, url=amqp_url) == 1
        testing.eventually(lambda: _effects(engine, effects) == ["z"], "effect z applied")
        assert testing.queue_depth(amqp_url, dead_q) == 0
    finally:
        consumer.stop()
        thread.join(10)


def test_queued_events_are_applied_in_batches_once_each_and_a_bad_one_alone(store, amqp_url):
    """What waits in the queue is applied a batch per transaction; a bad event is judged alone."""
    from sqlalchemy import event as sa_event

    engine, outbox_t, inbox_t, effects = store
    service = "svc6"
    _bind_test_queue(amqp_url, "t.caused", "thing.caused")

    bad_calls = []

    def record_and_announce(uow, event):
        if event.data.get("invalid"):
            bad_calls.append(event.id)
            raise envelope.PoisonMessage("invalid data")
        uow.session.execute(insert(effects).values(event_id=event.id, value=event.data["v"]))
        uow.emit(
            envelope.build(
                service=service, routing_key="thing.caused", subject="s", data=event.data
            )
        )

    # Queued before the consumer starts, so that its prefetch hands it many at once.
    conn = connect(amqp_url)
    topology.declare_service_queue(conn.channel(), service, ["thing.queued"])
    conn.close()
    good = [
        envelope.build(
            service="tests", routing_key="thing.queued", subject="s", data={"v": f"{n:02}"}
        )
        for n in range(30)
    ]
    bad = envelope.build(
        service="tests", routing_key="thing.queued", subject="s", data={"invalid": True}
    )
    # A prefetch of 20: a first batch with a duplicate inside, a second with a bad event.
    for event in [*good[:10], good[3], *good[10:25], bad, *good[25:]]:
        _publish(amqp_url, event)

    commits = []
    sa_event.listen(engine, "commit", lambda conn: commits.append(1))
    consumer = _consumer(
        engine, outbox_t, inbox_t, amqp_url, service, {"thing.queued": record_and_announce}
    )
    thread = _start(consumer)
    try:
        testing.eventually(lambda: len(_effects(engine, effects)) == 30, "30 effects applied")
        dead = testing.get_messages(amqp_url, names.dead_letter_queue(service), count=1, timeout=10)
        assert [props.message_id for _, props, _ in dead] == [bad.event_id]
        caused = testing.get_messages(amqp_url, "t.caused", count=31, timeout=10)
        assert len(caused) == 30
        testing.eventually(
            lambda: testing.queue_depth(amqp_url, names.service_queue(service)) == 0,
            "the service's queue empty",
        )
    finally:
        consumer.stop()
        thread.join(10)
    assert _effects(engine, effects) == [f"{n:02}" for n in range(30)]
    testing.eventually(
        lambda: _unsent(engine, outbox_t) == 0, "every outbox row marked sent", timeout=5
    )
    # One by one, the 32 deliveries take 31 commits of their effects and 30 of their
    # outbox marks; in batches, a few.
    assert len(commits) < 32, len(commits)
    # The bad event's handler ran once for its one delivery: judged from the batch's
    # failure, not run again alone.
    assert bad_calls == [bad.event_id]


def test_a_consumer_without_pings_applies_events_after_its_connections_are_dropped(
    store, amqp_url, db_backend
):
    """Consumers do not ping before each transaction: a dropped connection costs a retry."""
    if db_backend != "postgresql":
        pytest.skip("SQLite is a local file: no server to drop the connection")
    store_engine, outbox_t, inbox_t, effects = store
    # The consumer's engine pings nothing, as the consumers' engines (servicekit's
    # make_runtime); the test reads through one that does.
    engine = create_engine(store_engine.url, pool_pre_ping=False)
    reader = create_engine(store_engine.url, pool_pre_ping=True)
    service = "svc7"
    consumer = _consumer(
        engine, outbox_t, inbox_t, amqp_url, service, {"thing.later": _Recorder(effects)}
    )
    thread = _start(consumer)
    try:
        for value in ("a", "b"):
            _publish(
                amqp_url,
                envelope.build(
                    service="tests", routing_key="thing.later", subject="s", data={"v": value}
                ),
            )
            testing.eventually(lambda v=value: v in _effects(reader, effects), "the value applied")
            # The server ends every connection the pool holds, as a database restart does.
            with psycopg.connect(
                engine.url.set(drivername="postgresql", database="postgres").render_as_string(
                    hide_password=False
                ),
                autocommit=True,
            ) as admin:
                ended = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (engine.url.database,),
                ).fetchone()[0]
            assert ended >= 1
        _publish(
            amqp_url,
            envelope.build(
                service="tests", routing_key="thing.later", subject="s", data={"v": "c"}
            ),
        )
        testing.eventually(
            lambda: _effects(reader, effects) == ["a", "b", "c"], "effects a, b and c applied"
        )
    finally:
        consumer.stop()
        thread.join(10)
        engine.dispose()
        reader.dispose()


def test_slow_handlers_commit_a_batch_once_it_has_lasted_its_time(store, amqp_url, monkeypatch):
    """A batch stops taking events after BATCH_SECONDS; the rest go on in another batch."""
    from eventbus import consumer as consumer_module

    monkeypatch.setattr(consumer_module, "BATCH_SECONDS", 0.25)
    engine, outbox_t, inbox_t, effects = store
    service = "svc8"
    box = Outbox(engine, outbox_t, Publisher(amqp_url), service)
    transactions: list[int] = []  # the unit of work each event was applied in, numbered
    opened = itertools.count()

    def numbered_unit_of_work():
        uow = UnitOfWork(sessionmaker(engine), box, inbox_t)
        uow.number = next(opened)
        return uow

    def slow(uow, event):
        time.sleep(0.1)
        transactions.append(uow.number)
        uow.session.execute(insert(effects).values(event_id=event.id, value=event.data["v"]))

    conn = connect(amqp_url)
    topology.declare_service_queue(conn.channel(), service, ["thing.slow"])
    conn.close()
    for n in range(8):
        _publish(
            amqp_url,
            envelope.build(service="tests", routing_key="thing.slow", subject="s", data={"v": n}),
        )
    consumer = Consumer(
        service=service,
        handlers={"thing.slow": slow},
        unit_of_work=numbered_unit_of_work,
        url=amqp_url,
    )
    thread = _start(consumer)
    try:
        testing.eventually(lambda: len(_effects(engine, effects)) == 8, "8 effects applied")
    finally:
        consumer.stop()
        thread.join(10)
    sizes = Counter(transactions).values()
    # 0.1 s each: the third event passes 0.25 s and its batch commits.
    assert max(sizes) <= 3, sorted(sizes)
    assert sum(sizes) == 8


def _spy_channels(monkeypatch) -> list:
    """Record the (connection, channel) of each subscription the consumer makes."""
    from eventbus import consumer as consumer_module

    made = []

    class Recorded(consumer_module._Settlements):
        def __init__(self, conn, channel, prefetch):
            super().__init__(conn, channel, prefetch)
            made.append((conn, channel))

    monkeypatch.setattr(consumer_module, "_Settlements", Recorded)
    return made


def _consumers_on(url, queue) -> int:
    conn = connect(url)
    try:
        return conn.channel().queue_declare(queue, passive=True).method.consumer_count
    finally:
        conn.close()


def _consuming(service) -> float | None:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("nighttalk_consumer_consuming", {"service": service})


def _rabbitmqctl_in(url, command, *args) -> str:
    """Run a rabbitmqctl command in the vhost of ``url``; return what it printed."""
    import subprocess
    import urllib.parse

    vhost = urllib.parse.unquote(urllib.parse.urlparse(url).path[1:])
    return subprocess.run(
        ["rabbitmqctl", "-q", command, "-p", vhost, *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout


def _unacked(url, queue) -> int:
    listed = _rabbitmqctl_in(url, "list_queues", "name", "messages_unacknowledged")
    counts = dict(line.split() for line in listed.splitlines())
    return int(counts[queue])


def _cancel_from_the_broker(conn, channel) -> None:
    # The Basic.Cancel the broker sends a consumer, for its one subscription on the channel.
    import pika.frame
    import pika.spec

    [tag] = list(channel.consumer_tags)
    frame = pika.frame.Method(channel.channel_number, pika.spec.Basic.Cancel(consumer_tag=tag))
    # Processed as a frame read from the socket is, on the connection's own thread.
    conn.add_callback_threadsafe(lambda: conn._impl._process_frame(frame))  # noqa: SLF001


def _close_channel_from_the_broker(conn, channel) -> None:
    # Acking a delivery tag the broker never gave makes it close the channel
    # (PRECONDITION_FAILED), the connection staying up: what consumer_timeout does to a
    # delivery held unacked too long.
    conn.add_callback_threadsafe(lambda: channel.basic_ack(999_999))
    testing.eventually(lambda: not channel.is_open, "the broker closed the channel")


def test_a_channel_the_broker_closes_is_opened_again_and_consuming_goes_on(
    store, amqp_url, monkeypatch, caplog
):
    caplog.set_level(logging.WARNING, logger="eventbus.consumer")
    engine, outbox_t, inbox_t, effects = store
    service = "svc9"
    channels = _spy_channels(monkeypatch)
    consumer = _consumer(
        engine, outbox_t, inbox_t, amqp_url, service, {"thing.on": _Recorder(effects)}
    )
    thread = _start(consumer)
    try:
        _publish(
            amqp_url,
            envelope.build(service="tests", routing_key="thing.on", subject="s", data={"v": "a"}),
        )
        testing.eventually(lambda: _effects(engine, effects) == ["a"], "effect a applied")
        testing.eventually(
            lambda: _unacked(amqp_url, names.service_queue(service)) == 0, "effect a acked"
        )
        _close_channel_from_the_broker(*channels[0])
        _publish(
            amqp_url,
            envelope.build(service="tests", routing_key="thing.on", subject="s", data={"v": "b"}),
        )
        testing.eventually(lambda: _effects(engine, effects) == ["a", "b"], "effect b applied")
        assert len(channels) == 2
        assert _consumers_on(amqp_url, names.service_queue(service)) == 1
        assert _consuming(service) == 1
    finally:
        consumer.stop()
        thread.join(10)
    assert _consuming(service) == 0
    [said] = [r for r in caplog.records if r.getMessage() == "subscription lost; resubscribing"]
    assert said.levelno == logging.WARNING
    assert said.reason == "channel closed by the broker"
    assert "PRECONDITION_FAILED" in said.error


def test_a_subscription_the_broker_cancels_is_made_again(store, amqp_url, caplog, monkeypatch):
    """The broker cancels a consumer (Basic.Cancel) when its queue is deleted, as an operator
    changing its arguments does: the consumer subscribes again and consuming goes on."""
    caplog.set_level(logging.WARNING, logger="eventbus.consumer")
    engine, outbox_t, inbox_t, effects = store
    service = "svc10"
    channels = _spy_channels(monkeypatch)
    consumer = _consumer(
        engine, outbox_t, inbox_t, amqp_url, service, {"thing.anew": _Recorder(effects)}
    )
    thread = _start(consumer)
    try:
        # RabbitMQ 3.10 does not always send the cancel when a quorum queue is deleted
        # (seen: none came, the consumer left on the deleted queue), so the broker's frame
        # is handed to the consumer's channel as the connection would hand it over.
        _cancel_from_the_broker(*channels[0])
        testing.eventually(lambda: len(channels) == 2, "the consumer subscribed again")
        _publish(
            amqp_url,
            envelope.build(service="tests", routing_key="thing.anew", subject="s", data={"v": "a"}),
        )
        testing.eventually(lambda: _effects(engine, effects) == ["a"], "effect a applied")
        assert _consumers_on(amqp_url, names.service_queue(service)) == 1
    finally:
        consumer.stop()
        thread.join(10)
    said = [r for r in caplog.records if r.getMessage() == "subscription lost; resubscribing"]
    assert [r.reason for r in said] == ["cancelled by the broker"]


def _no_cancel_from_the_broker(conn) -> None:
    # RabbitMQ 3.10 does not always send Basic.Cancel when a quorum queue is deleted (seen:
    # never, in 4 runs of 4, when the queue is declared again at once; sometimes when it is
    # deleted alone): the frame is dropped as it arrives, so that the consumer is left, as
    # there, subscribed to a queue that is gone.
    import pika.spec

    impl = conn._impl  # noqa: SLF001
    process = impl._process_frame  # noqa: SLF001

    def without_cancels(frame):
        if not isinstance(getattr(frame, "method", None), pika.spec.Basic.Cancel):
            process(frame)

    impl._process_frame = without_cancels  # noqa: SLF001


def _lost(service, reason) -> float:
    from prometheus_client import REGISTRY

    return (
        REGISTRY.get_sample_value(
            "nighttalk_consumer_subscriptions_lost_total", {"service": service, "reason": reason}
        )
        or 0.0
    )


def test_a_queue_deleted_and_declared_again_without_a_cancel_is_subscribed_to_again(
    store, amqp_url, caplog, monkeypatch
):
    """An operator deletes a service's queue and declares it again (`nighttalk broker
    declare`, new arguments); no cancel comes, and RabbitMQ 3.10 counts the consumer on the
    new queue and hands it messages that never arrive: the consumer finds messages ready
    and none coming, subscribes again, and every event is applied."""
    caplog.set_level(logging.WARNING, logger="eventbus.consumer")
    engine, outbox_t, inbox_t, effects = store
    service = "svc14"
    channels = _spy_channels(monkeypatch)
    consumer = _consumer(
        engine,
        outbox_t,
        inbox_t,
        amqp_url,
        service,
        {"thing.redone": _Recorder(effects)},
        prefetch=2,
        queue_check=0.5,
    )
    thread = _start(consumer)
    try:
        _no_cancel_from_the_broker(channels[0][0])
        conn = connect(amqp_url)
        try:
            conn.channel().queue_delete(names.service_queue(service))
            topology.declare_service_queue(conn.channel(), service, ["thing.redone"])
        finally:
            conn.close()
        # More than the consumer's window: what the new queue hands the lost subscription
        # fills it, and the rest waits, ready.
        for value in ("a", "b", "c"):
            _publish(
                amqp_url,
                envelope.build(
                    service="tests", routing_key="thing.redone", subject="s", data={"v": value}
                ),
            )
        testing.eventually(
            lambda: _effects(engine, effects) == ["a", "b", "c"], "effects a, b and c applied"
        )
        assert len(channels) == 2
        assert _consumers_on(amqp_url, names.service_queue(service)) == 1
        assert _consuming(service) == 1
    finally:
        consumer.stop()
        thread.join(10)
    assert not thread.is_alive()
    [said] = [r for r in caplog.records if r.getMessage() == "subscription lost; resubscribing"]
    assert said.levelno == logging.WARNING
    # Which it sees first depends on when it looks: RabbitMQ counts the lost consumer on
    # the new queue a moment after the queue is declared.
    assert said.reason in ("no delivery from the queue", "no consumer on the queue")
    assert _lost(service, said.reason) == 1


def test_a_queue_deleted_without_a_cancel_is_declared_and_subscribed_to_again(
    store, amqp_url, caplog, monkeypatch
):
    """The queue deleted and nothing declares it again; no cancel comes: the consumer finds
    it gone, declares it again with its bindings and subscribes, and an event published
    afterwards reaches its handler."""
    caplog.set_level(logging.WARNING, logger="eventbus.consumer")
    engine, outbox_t, inbox_t, effects = store
    service = "svc15"
    channels = _spy_channels(monkeypatch)
    consumer = _consumer(
        engine,
        outbox_t,
        inbox_t,
        amqp_url,
        service,
        {"thing.gone": _Recorder(effects)},
        queue_check=0.5,
    )
    thread = _start(consumer)
    try:
        _no_cancel_from_the_broker(channels[0][0])
        conn = connect(amqp_url)
        try:
            conn.channel().queue_delete(names.service_queue(service))
        finally:
            conn.close()
        # Until the consumer declares it again, an event for it is unroutable.
        testing.eventually(lambda: len(channels) == 2, "the consumer subscribed again")
        testing.eventually(lambda: _consuming(service) == 1, "the consumer consuming again")
        _publish(
            amqp_url,
            envelope.build(service="tests", routing_key="thing.gone", subject="s", data={"v": "a"}),
        )
        testing.eventually(lambda: _effects(engine, effects) == ["a"], "effect a applied")
        assert _consumers_on(amqp_url, names.service_queue(service)) == 1
    finally:
        consumer.stop()
        thread.join(10)
    assert not thread.is_alive()
    [said] = [r for r in caplog.records if r.getMessage() == "subscription lost; resubscribing"]
    assert said.levelno == logging.WARNING
    assert said.reason == "queue not found"
    assert "NOT_FOUND" in said.error
    assert _lost(service, "queue not found") == 1


def test_a_consumer_whose_window_is_full_is_not_taken_for_lost(
    store, amqp_url, caplog, monkeypatch
):
    """A handler holds the consumer's whole window while more events wait, ready, look
    after look at the queue: that is a busy consumer, not a lost subscription."""
    from eventbus import consumer as consumer_module

    caplog.set_level(logging.WARNING, logger="eventbus.consumer")
    engine, outbox_t, inbox_t, effects = store
    service = "svc16"
    looks = Counter()
    look = consumer_module._QueueWatch._look

    def counted(watch):
        answer = look(watch)
        looks[answer] += 1
        return answer

    monkeypatch.setattr(consumer_module._QueueWatch, "_look", counted)
    channels = _spy_channels(monkeypatch)
    release = threading.Event()
    recorder = _Recorder(effects)

    def held(uow, event):
        release.wait(30)
        recorder(uow, event)

    consumer = _consumer(
        engine,
        outbox_t,
        inbox_t,
        amqp_url,
        service,
        {"thing.busy": held},
        prefetch=1,
        queue_check=0.2,
    )
    thread = _start(consumer)
    try:
        for value in ("a", "b", "c"):
            _publish(
                amqp_url,
                envelope.build(
                    service="tests", routing_key="thing.busy", subject="s", data={"v": value}
                ),
            )
        # One consumer, one held, two ready: seen in three looks in a row.
        testing.eventually(lambda: looks[(1, 2)] >= 3, "three looks at the busy queue")
        release.set()
        testing.eventually(
            lambda: _effects(engine, effects) == ["a", "b", "c"], "effects a, b and c applied"
        )
        assert len(channels) == 1
    finally:
        release.set()
        consumer.stop()
        thread.join(10)
    assert not thread.is_alive()
    assert not [r for r in caplog.records if r.getMessage() == "subscription lost; resubscribing"]


def test_a_channel_closed_while_the_database_is_away_is_opened_again_once_it_answers(
    store, amqp_url, monkeypatch
):
    """The broker's consumer_timeout closes the channel of a delivery held through a long
    database outage: the consumer lets go of it at once and subscribes again only once the
    database answers, so the broker does not hand it the messages again (and count each
    return toward their delivery limit) while nothing can be applied."""
    from sqlalchemy.exc import OperationalError

    engine, outbox_t, inbox_t, effects = store
    service = "svc11"
    channels = _spy_channels(monkeypatch)
    away, opened = threading.Event(), Counter()
    box = Outbox(engine, outbox_t, Publisher(amqp_url), service)

    def unit_of_work():
        opened["units"] += 1
        if away.is_set():
            raise OperationalError("connect", {}, Exception("connection refused"))
        return UnitOfWork(sessionmaker(engine), box, inbox_t)

    consumer = Consumer(
        service=service,
        handlers={"thing.held": _Recorder(effects)},
        unit_of_work=unit_of_work,
        url=amqp_url,
    )
    thread = _start(consumer)
    try:
        away.set()
        event = envelope.build(
            service="tests", routing_key="thing.held", subject="s", data={"v": "a"}
        )
        _publish(amqp_url, event)
        testing.eventually(lambda: opened["units"] >= 2, "the event retried in place")
        _close_channel_from_the_broker(*channels[0])
        # While the database is away the consumer asks it, not the broker: it tries the
        # database again and again, the event waiting in the queue, held by nobody.
        tried = opened["units"]
        testing.eventually(lambda: opened["units"] >= tried + 3, "the database tried again")
        assert len(channels) == 1
        assert _consumers_on(amqp_url, names.service_queue(service)) == 0
        assert testing.queue_depth(amqp_url, names.service_queue(service)) == 1
        assert _consuming(service) == 0
        away.clear()
        testing.eventually(lambda: _effects(engine, effects) == ["a"], "effect a applied")
        assert len(channels) == 2
    finally:
        away.clear()
        consumer.stop()
        thread.join(10)


def _admin_dsn(engine) -> str:
    return engine.url.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )


def test_a_database_that_refuses_writes_is_waited_for_and_nothing_is_dead_lettered(
    store, amqp_url, db_backend, caplog
):
    """A failover's demoted primary, or default_transaction_read_only during maintenance,
    answers every write with SQLSTATE 25006: the database is away for writes, as in an
    outage; the events wait, and are applied once it takes writes again."""
    if db_backend != "postgresql":
        pytest.skip("SQLite has no read-only mode a server sets")
    caplog.set_level(logging.WARNING, logger="eventbus.consumer")
    engine, outbox_t, inbox_t, effects = store
    service = "svc12"
    database = engine.url.database
    with psycopg.connect(_admin_dsn(engine), autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
    engine.dispose()
    box = Outbox(engine, outbox_t, Publisher(amqp_url), service)
    consumer = Consumer(
        service=service,
        handlers={"thing.kept": _Recorder(effects)},
        unit_of_work=lambda: UnitOfWork(sessionmaker(engine), box, inbox_t),
        url=amqp_url,
        delivery_limit=1,
        engine=engine,  # as servicekit's consumers: watched, and its links renewed
    )
    thread = _start(consumer)
    try:
        events = [
            envelope.build(
                service="tests", routing_key="thing.kept", subject="s", data={"v": value}
            )
            for value in ("a", "b")
        ]
        for event in events:
            _publish(amqp_url, event)

        def waits():
            return [
                r
                for r in caplog.records
                if r.getMessage() == "database unavailable; retrying event"
                and r.sqlstate == "25006"
            ]

        testing.eventually(lambda: len(waits()) >= 3, "the event retried in place")
        assert testing.queue_depth(amqp_url, names.dead_letter_queue(service)) == 0
        with psycopg.connect(_admin_dsn(engine), autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{database}" RESET default_transaction_read_only')
        testing.eventually(
            lambda: _effects(engine, effects) == ["a", "b"], "effects a and b applied", timeout=30
        )
        assert testing.queue_depth(amqp_url, names.dead_letter_queue(service)) == 0
    finally:
        consumer.stop()
        thread.join(10)


def test_an_event_waiting_on_a_lock_is_retried_without_leaving_backends_behind(
    store, amqp_url, db_backend
):
    """A row lock held by another session (a long admin transaction): the event waiting
    for it is retried in place, each try ended on the server, one backend at a time; once
    the lock is released it is applied, once, and the events behind it too."""
    from sqlalchemy import text

    if db_backend != "postgresql":
        pytest.skip("SQLite locks the whole file: no row lock to wait on")
    engine, outbox_t, inbox_t, effects = store
    service = "svc13"
    with engine.begin() as conn:
        conn.execute(insert(effects).values(event_id="locked", value="x"))
    calls = Counter()

    def needs_the_row(uow, event):
        calls[event.data["v"]] += 1
        if event.data["v"] == "needs-lock":
            uow.session.execute(text("UPDATE effects SET value = 'y' WHERE event_id = 'locked'"))
        uow.session.execute(insert(effects).values(event_id=event.id, value=event.data["v"]))

    box = Outbox(engine, outbox_t, Publisher(amqp_url), service)
    consumer = Consumer(
        service=service,
        handlers={"thing.locked": needs_the_row},
        unit_of_work=lambda: UnitOfWork(sessionmaker(engine), box, inbox_t),
        url=amqp_url,
        heartbeat=2,  # the watch's bound: 2 s
        engine=engine,
    )
    holder = create_engine(engine.url).connect()
    holding = holder.begin()
    holder.execute(text("SELECT * FROM effects WHERE event_id = 'locked' FOR UPDATE"))
    thread = _start(consumer)
    try:
        for value in ("needs-lock", "behind-1", "behind-2"):
            _publish(
                amqp_url,
                envelope.build(
                    service="tests", routing_key="thing.locked", subject="s", data={"v": value}
                ),
            )
        testing.eventually(lambda: calls["needs-lock"] >= 3, "the event tried three times")
        with holder.engine.connect() as look:
            waiting = look.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            ).scalar()
        assert waiting <= 1, f"{waiting} backends wait on the lock"
        holding.rollback()
        testing.eventually(
            lambda: _effects(engine, effects) == ["behind-1", "behind-2", "needs-lock", "y"],
            "every event applied",
        )
    finally:
        holder.close()
        holder.engine.dispose()
        consumer.stop()
        thread.join(10)
