"""Poison and unroutable messages, on the real broker (the module's vhost) and a real database.

Poison: the eventbus consumer the services run, with the production delivery limit,
reads a stream of good events among which come one whose handler raises every time
and one that cannot even be decoded. No service handler raises on valid input on
purpose (they reject bad data as poison at once), so the consumer gets a handler of the
scenario's own with that bug.

Unroutable: a unit of work commits events of which one has no queue bound for its
routing key; the outbox publishes right after the commit and the relay sweeps again.

Must hold: the raising event reaches ``<service>.dead`` after the delivery limit, the
undecodable one at its first delivery, and every good event is applied exactly once
(the good traffic's extra delay is reported as the stall); an unroutable event is never
marked sent and does not hold back the routable events of its transaction.
"""

from __future__ import annotations

import statistics
import threading
import time

import pika
import pytest
from proofkit import event_store, size
from sqlalchemy import Column, Float, Integer, insert, select
from sqlalchemy.orm import sessionmaker

from eventbus import dead_letters, envelope, names, relay, testing, topology
from eventbus.connection import connect
from eventbus.consumer import Consumer
from eventbus.outbox import Outbox
from eventbus.publisher import Publisher
from eventbus.unit_of_work import UnitOfWork

pytestmark = pytest.mark.proof

GOOD = size(60, 400)  # good events in the stream
PACE = 0.05  # seconds between two good events
POISON_AT = GOOD // 3  # the two bad messages go out after this many good ones


@pytest.fixture
def store(make_database):
    effects = (
        Column("n", Integer, primary_key=True),  # a second application would conflict
        Column("applied_at", Float, nullable=False),
    )
    with event_store(make_database, "proof_poison", *effects) as tables:
        yield tables


def test_poison_is_dead_lettered_while_good_traffic_flows(proof, store, module_amqp_url):
    service = "proofpoison"
    limit = topology.DEFAULT_DELIVERY_LIMIT
    proof.row(
        "poison messages",
        done=f"{GOOD} good events every {PACE * 1000:g} ms; after {POISON_AT} of them one "
        "event whose handler raises every time and one undecodable message",
        must_hold=f"the raising one in {names.dead_letter_queue(service)} after {limit} "
        "redeliveries, the undecodable one at its first delivery; every good event applied "
        "exactly once",
    )
    url = module_amqp_url
    engine, outbox_t, inbox_t, effects = store
    poison_calls: list[float] = []

    def work(uow, event):
        if event.data.get("poison"):
            poison_calls.append(time.time())
            raise RuntimeError("a handler bug that fails on this event every time")
        uow.session.execute(insert(effects).values(n=event.data["n"], applied_at=time.time()))

    box = Outbox(engine, outbox_t, Publisher(url), service)
    ready = threading.Event()
    consumer = Consumer(
        service=service,
        handlers={"proof.work": work},
        unit_of_work=lambda: UnitOfWork(sessionmaker(engine), box, inbox_t),
        url=url,
        on_ready=ready.set,
    )
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    published: dict[int, float] = {}
    poison = envelope.build(
        service="proof", routing_key="proof.work", subject="c-poison", data={"poison": True}
    )
    dead_queue = names.dead_letter_queue(service)
    try:
        assert ready.wait(15), "consumer did not start"
        conn = connect(url)
        channel = conn.channel()
        channel.confirm_delivery()
        for n in range(GOOD):
            if n == POISON_AT:
                poison_sent = time.time()
                channel.basic_publish(
                    poison.exchange,
                    poison.routing_key,
                    poison.body,
                    poison.properties(),
                    mandatory=True,
                )
                channel.basic_publish(
                    names.EVENTS_EXCHANGE,
                    "proof.work",
                    b"\x00 not an event",
                    pika.BasicProperties(delivery_mode=2, message_id="undecodable"),
                    mandatory=True,
                )
            event = envelope.build(
                service="proof", routing_key="proof.work", subject=f"c-{n}", data={"n": n}
            )
            published[n] = time.time()
            channel.basic_publish(
                event.exchange, event.routing_key, event.body, event.properties(), mandatory=True
            )
            time.sleep(PACE)
        conn.close()
        testing.eventually(
            lambda: len(_applied(engine, effects)) >= GOOD, "the good events applied", timeout=60
        )
        testing.eventually(
            lambda: testing.queue_depth(url, dead_queue) >= 2, "two dead letters", timeout=60
        )
        letters = {letter.event_id: letter for letter in dead_letters.inspect(service, url=url)}
    finally:
        consumer.stop()
        thread.join(15)
        box.publisher.close()

    applied = _applied(engine, effects)
    latency = {n: applied[n] - published[n] for n in applied}
    before = [latency[n] for n in range(POISON_AT)]
    after = [latency[n] for n in range(POISON_AT, GOOD)]
    baseline = statistics.median(before)
    proof.figure("good applied", f"{len(applied)}/{GOOD}")
    proof.figure("good latency p50 before the poison (ms)", round(baseline * 1000))
    proof.figure("worst good latency after it (ms)", round(max(after) * 1000))
    proof.figure("stall (ms)", round((max(after) - baseline) * 1000))
    proof.figure("raising handler calls", len(poison_calls))
    proof.figure("poison dead after (s)", round(poison_calls[-1] - poison_sent, 2))
    named = {poison.event_id: "raising", "undecodable": "undecodable"}
    proof.figure(
        "dead letters",
        ", ".join(sorted(f"{named.get(k, k)} ({v.reason})" for k, v in letters.items())),
    )

    assert sorted(applied) == list(range(GOOD))  # each once: n is the primary key
    assert set(letters) == {poison.event_id, "undecodable"}
    # The first delivery and `limit` redeliveries, then the broker dead-letters it.
    assert len(poison_calls) == limit + 1
    assert letters[poison.event_id].reason == "delivery_limit"
    # Rejected by the consumer at its first delivery, never redelivered.
    assert (letters["undecodable"].reason, letters["undecodable"].deaths) == ("rejected", 1)
    assert testing.queue_depth(url, names.service_queue(service)) == 0


def _applied(engine, effects) -> dict[int, float]:
    with engine.connect() as conn:
        return {r.n: r.applied_at for r in conn.execute(select(effects))}


def test_an_unroutable_event_is_never_marked_sent(proof, store, module_amqp_url):
    proof.row(
        "unroutable publish",
        done="one transaction commits three events, the middle one with a routing key no "
        "queue is bound to; the relay then sweeps for a while",
        must_hold="the unroutable event stays unsent (its failure recorded) after the commit "
        "and every sweep; the two routable ones are delivered once each",
    )
    url = module_amqp_url
    engine, outbox_t, inbox_t, _ = store
    bound = "proof.unroutable.bound"
    conn = connect(url)
    channel = conn.channel()
    topology.declare_exchanges(channel)
    channel.queue_declare(bound, durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_bind(bound, names.EVENTS_EXCHANGE, routing_key="proof.routable")
    conn.close()

    box = Outbox(engine, outbox_t, Publisher(url), "proofunroutable")
    routable = [
        envelope.build(service="proof", routing_key="proof.routable", subject="s", data={"i": i})
        for i in range(2)
    ]
    lost = envelope.build(service="proof", routing_key="proof.nobody", subject="s", data={})
    with UnitOfWork(sessionmaker(engine), box, inbox_t) as uow:
        uow.emit(routable[0])
        uow.emit(lost)
        uow.emit(routable[1])
        uow.commit()
    after_commit = _row(engine, outbox_t, lost.event_id)

    # The relay process's loop, asked for no grace, for a few rounds: it still leaves rows
    # younger than MARKS_SETTLE alone, which may be published and waiting for their mark.
    stop = threading.Event()
    sweeping = threading.Thread(
        target=relay.run, args=(box, stop), kwargs={"interval": 0.5, "grace": 0}, daemon=True
    )
    sweeping.start()
    time.sleep(3)
    stop.set()
    sweeping.join(15)
    box.publisher.close()
    after_sweeps = _row(engine, outbox_t, lost.event_id)
    delivered = testing.get_messages(url, bound, count=3, timeout=5)

    proof.figure("routable delivered", len(delivered))
    proof.figure("unroutable attempts after commit", after_commit.attempts)
    proof.figure("unroutable attempts after the relay", after_sweeps.attempts)
    proof.figure("unroutable last error", (after_sweeps.last_error or "")[:60])
    for row in (_row(engine, outbox_t, e.event_id) for e in routable):
        assert row.sent_at is not None
    assert sorted(props.message_id for _, props, _ in delivered) == sorted(
        e.event_id for e in routable
    )
    assert after_commit.sent_at is None and after_commit.attempts >= 1
    assert "unroutable" in after_commit.last_error
    assert after_sweeps.sent_at is None
    assert after_sweeps.attempts > after_commit.attempts  # the relay did try it again


def _row(engine, outbox_t, event_id: str):
    with engine.connect() as conn:
        return conn.execute(select(outbox_t).where(outbox_t.c.event_id == event_id)).one()
