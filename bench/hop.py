"""The event hop floor: what the event machinery costs per event, with a handler doing nothing.

A visit crosses the system as events: each application of an event is a confirmed,
persistent publish from an outbox, a delivery from a quorum queue, an inbox claim, the
handler, the outbox rows of what it caused, a commit and an ack. This runs a service
consumer (``eventbus.Consumer`` on PostgreSQL, as the services run it) whose handler only
passes its event on, offers it chains of events at a fixed rate, each passed on ``depth``
times, and reads the CPU its process, PostgreSQL and RabbitMQ spend per hop as the
benchmark reads the system's. Times the event applications a visit makes, it is the part
of a visit's cost that no handler can take away: the floor the design sets.

``python -m bench.hop consume DATABASE_URL AMQP_URL`` is the consumer's process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import create_engine

from bench.cpu import cpu_seconds, shared_seconds
from eventbus import envelope, names, topology
from eventbus.connection import connect
from eventbus.consumer import Consumer
from servicekit import logs
from servicekit.db import service_metadata
from servicekit.runtime import make_runtime

ROOT = Path(__file__).resolve().parents[1]
SERVICE = "hop"
SINK = "bench.hop.sink"


def _pass_on(uow, event) -> None:
    """Emit the event again, one hop fewer to go; the last hop leaves for the sink."""
    left = event.data["left"]
    uow.emit(
        envelope.build(
            service=SERVICE,
            routing_key="hop.passed" if left > 0 else "hop.done",
            subject=event.subject,
            data={"left": left - 1, "pad": event.data["pad"]},
        )
    )


def consume(database_url: str, amqp_url: str) -> None:
    """Run the hop service's consumer until terminated (its own process, as a service's)."""
    logs.configure(SERVICE)  # a line per event applied, as every service writes
    runtime = make_runtime(SERVICE, service_metadata(), database_url, amqp_url, pre_ping=False)
    consumer = Consumer(
        url=amqp_url,
        service=SERVICE,
        handlers={"hop.passed": _pass_on},
        unit_of_work=runtime.unit_of_work,
        engine=runtime.engine,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=lambda: (stop.wait(), consumer.stop()), daemon=True).start()
    try:
        consumer.run()
    finally:
        runtime.close()


def _cpu(pid: int) -> dict[str, float]:
    return {"consumer": cpu_seconds(pid), **shared_seconds()}


def _sunk(channel) -> int:
    return channel.queue_declare(SINK, passive=True).method.message_count


def hop_floor(
    database_url: str,
    amqp_url: str,
    *,
    hops_per_s: float,
    seconds: float,
    depth: int = 10,
    log_path: Path | None = None,
) -> dict:
    """Return the CPU milliseconds per hop (consumer, PostgreSQL, RabbitMQ) at a fixed rate."""
    engine = create_engine(database_url)
    service_metadata().create_all(engine)
    engine.dispose()
    conn = connect(amqp_url)
    channel = conn.channel()
    topology.declare_service_queue(channel, SERVICE, ["hop.passed"])
    channel.queue_declare(SINK, durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_bind(SINK, names.EVENTS_EXCHANGE, routing_key="hop.done")
    channel.confirm_delivery()
    with open(log_path or os.devnull, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.hop", "consume", database_url, amqp_url],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "LOG_LEVEL": "INFO"},
            stdout=log,
            stderr=log,
        )
    try:

        def offer(chains: int, rate: float) -> None:
            start = time.monotonic()
            for n in range(chains):
                delay = start + n / rate - time.monotonic()
                if delay > 0:
                    conn.sleep(delay)  # keeps the connection's heartbeats
                event = envelope.build(
                    service="bench",
                    routing_key="hop.passed",
                    subject=f"chain-{n}",
                    data={"left": depth - 1, "pad": "x" * 300},
                )
                channel.basic_publish(
                    event.exchange, event.routing_key, event.body, event.properties()
                )

        def settle(expected: int, within: float) -> None:
            deadline = time.monotonic() + within
            while _sunk(channel) < expected:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"hop consumer passed on {_sunk(channel)}/{expected} chains")
                conn.sleep(0.05)

        offer(5, 100.0)  # the consumer is up once these come through; warms its pools
        settle(5, 60)
        conn.sleep(1.0)
        idle_from, idle_used = time.monotonic(), _cpu(proc.pid)
        conn.sleep(3.0)
        idle = {
            k: (v - idle_used[k]) / (time.monotonic() - idle_from)
            for k, v in _cpu(proc.pid).items()
        }
        channel.queue_purge(SINK)
        chains = max(1, round(hops_per_s * seconds / depth))
        began, before = time.monotonic(), _cpu(proc.pid)
        offer(chains, hops_per_s / depth)
        settle(chains, 60 + seconds)
        took, after = time.monotonic() - began, _cpu(proc.pid)
        hops = chains * depth
        spent = {
            k: round(max(0.0, after[k] - before[k] - idle[k] * took) * 1000 / hops, 3)
            for k in after
        }
        return {
            "offered_hops_per_s": hops_per_s,
            "hops_per_s": round(hops / took, 1),
            "cpu_ms_per_hop": spent,
            "cpu_ms_per_hop_total": round(sum(spent.values()), 2),
        }
    finally:
        proc.terminate()
        proc.wait(20)
        conn.close()


if __name__ == "__main__":
    if sys.argv[1:2] != ["consume"] or len(sys.argv) != 4:
        sys.exit("usage: python -m bench.hop consume DATABASE_URL AMQP_URL")
    consume(sys.argv[2], sys.argv[3])
