"""Broker restart: RabbitMQ stops and starts again in the middle of a stream of visits.

The system runs on a RabbitMQ node of the test's own (the machine's broker serves other
test sessions); the node is stopped with ``rabbitmqctl stop`` while visits keep coming,
then started again on the same data directory, as an operator's restart does.
"""

from __future__ import annotations

import threading
import time

import pytest
from private_broker import private_broker
from stream import NOTIFY_ENV, Ledger, SmsGateway, VisitStream

from conftest import size, start_system

pytestmark = pytest.mark.proof

VISITS = size(60, 600)
RATE = size(4.0, 5.0)  # visits per second: a busy evening, well below what the system keeps up
DOWN = size(2.0, 30.0)  # seconds the broker stays stopped
DRAIN_LIMIT = size(90.0, 300.0)  # the longest wait for the effects before calling them lost


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    with private_broker(tmp_path_factory.mktemp("private-broker")) as node:
        yield node


@pytest.fixture(scope="module")
def gateway():
    sms = SmsGateway()
    yield sms
    sms.close()


@pytest.fixture(scope="module")
def system(broker, gateway, db_backend, proof_logs):
    """Yield the whole system on the private broker, sending SMS to the test's gateway."""
    folder = proof_logs / "test_broker_restart"
    folder.mkdir()
    env = {**NOTIFY_ENV, "NIGHTTALK_SMS_URL": gateway.url}
    with start_system(broker.amqp_url, db_backend, folder, extra_env=env) as running:
        yield running


class Sampler:
    """Read intake's outbox backlog every ``every`` seconds from a thread; keep the peak."""

    def __init__(self, ledger: Ledger, every: float = 0.2) -> None:
        self.peak = 0
        self._stop = threading.Event()

        def run() -> None:
            while not self._stop.wait(every):
                self.peak = max(self.peak, ledger.outbox_backlog())

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(10)
        return self.peak


def test_broker_restart_loses_and_duplicates_nothing(system, broker, gateway, proof):
    row = proof.row(
        "broker restart",
        done=(
            f"{VISITS} visits posted at {RATE:g}/s; RabbitMQ stopped (rabbitmqctl stop) for "
            f"{DOWN:g} s mid-stream and started again on its data"
        ),
        must_hold=(
            "every case answered 201 is routed exactly once and its visitor notified exactly "
            "once (receipt SMS and routed SMS); nothing lost, nothing duplicated"
        ),
    )
    ledger = Ledger(system, gateway)
    try:
        sampler = Sampler(ledger)
        stream = VisitStream(system, VISITS, RATE).start()
        while len(stream.accepted) < VISITS // 4 and not stream.done:
            time.sleep(0.05)

        stopping, accepted_at_stop = time.monotonic(), len(stream.accepted)
        broker.stop()
        time.sleep(DOWN)
        broker.start()
        up = time.monotonic()
        accepted_while_down = len(stream.accepted) - accepted_at_stop
        # Time to drain: from the broker back up until every case accepted before then
        # is routed and its visitor told (the stream goes on meanwhile).
        before_up = stream.case_ids
        drained = ledger.wait_for_effects(before_up, DRAIN_LIMIT)
        drain_time = time.monotonic() - up

        stream.join(VISITS / RATE + 120)
        peak = sampler.stop()
        effects = ledger.wait_for_effects(stream.case_ids, DRAIN_LIMIT)
        undelivered = ledger.wait_delivered(stream.case_ids, 30)
    finally:
        ledger.close()

    lost, duplicated = effects.lost(), effects.duplicated()
    row.figures.update(
        {
            "accepted": f"{len(stream.accepted)}/{VISITS}",
            "accepted while the broker was down": accepted_while_down,
            "broker down (s)": round(up - stopping, 1),
            "lost": len(lost),
            "duplicated": len(duplicated),
            "peak outbox backlog": peak,
            "time to drain (s)": round(drain_time, 1),
            "client retries": stream.retries,
            "SMS requests / messages": f"{gateway.requests}/{len(gateway.messages)}",
        }
    )
    assert stream.refused == []
    assert len(stream.case_ids) == len(set(stream.case_ids)) == VISITS
    # The outage was real: intake kept answering, and its events waited in the outbox.
    assert accepted_while_down > 0
    assert peak > 0
    assert drained.lost() == []
    assert (lost, duplicated) == ([], [])
    assert undelivered == []
