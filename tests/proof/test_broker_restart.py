"""Broker restart: RabbitMQ stops and starts again in the middle of a stream of visits.

The system runs on a RabbitMQ node of the test's own (the machine's broker serves other
test sessions); the node is stopped with ``rabbitmqctl stop`` while visits keep coming,
then started again on the same data directory, as an operator's restart does.
"""

from __future__ import annotations

import contextlib
import threading
import time

import pytest
from private_broker import private_broker
from proofkit import size
from sqlalchemy.exc import OperationalError
from stream import Ledger, VisitStream, system_sending_sms

# Starting the system, a stream and its drain outlast the usual 300 s per test on a
# loaded machine; the full size streams for minutes.
pytestmark = [pytest.mark.proof, pytest.mark.timeout(size(900, 2400))]

RATE = size(4.0, 5.0)  # visits per second: a busy evening, well below what the system keeps up
BEFORE = size(2.0, 20.0)  # seconds of stream before the broker is stopped
DOWN = size(2.0, 30.0)  # seconds the broker stays stopped
AFTER = size(3.0, 20.0)  # seconds of stream once it is back
DRAIN_LIMIT = size(300.0, 600.0)  # how long to wait for the effects before calling them lost


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    with private_broker(tmp_path_factory.mktemp("private-broker")) as node:
        yield node


@pytest.fixture(scope="module")
def system(broker, gateway, db_backend, proof_logs):
    """Yield the whole system on the private broker, sending SMS to the test's gateway."""
    folder = proof_logs / "test_broker_restart"
    folder.mkdir()
    with system_sending_sms(broker.amqp_url, db_backend, folder, gateway) as running:
        yield running


class Sampler:
    """Read intake's outbox backlog every ``every`` seconds from a thread; keep the peak."""

    def __init__(self, ledger: Ledger, every: float = 0.2) -> None:
        self.peak = 0
        self._stop = threading.Event()

        def run() -> None:
            while not self._stop.wait(every):
                # A busy database may refuse one read; the next sample comes soon enough.
                with contextlib.suppress(OperationalError):
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
            f"visits posted at {RATE:g}/s; after {BEFORE:g} s RabbitMQ stopped (rabbitmqctl "
            f"stop), left down {DOWN:g} s, started again on its data; {AFTER:g} s more visits"
        ),
        must_hold=(
            "every case answered 201 is routed exactly once and its visitor notified exactly "
            "once (receipt SMS and routed SMS); nothing lost, nothing duplicated"
        ),
    )
    ledger, sampler, stream = Ledger(system, gateway), None, None
    try:
        ledger.wait_unit_known()
        sampler = Sampler(ledger)
        stream = VisitStream(system, None, RATE).start()
        time.sleep(BEFORE)
        broker.stop()
        # From here until start() returns, the broker is really away (the stop above and
        # the start below each take seconds of their own).
        down, accepted_before = time.monotonic(), len(stream.accepted)
        time.sleep(DOWN)
        broker.start()
        up = time.monotonic()
        accepted_while_down = len(stream.accepted) - accepted_before
        threading.Timer(AFTER, stream.stop).start()
        # Time to drain: from the broker back up until every case accepted before then
        # is routed and its visitor told (the stream goes on meanwhile).
        drained = ledger.wait_for_effects(stream.case_ids, DRAIN_LIMIT)
        drain_time = time.monotonic() - up

        stream.join(AFTER + 150)
        ledger.wait_for_effects(stream.case_ids, DRAIN_LIMIT)
        undelivered = ledger.wait_delivered(stream.case_ids, 30)
        unpublished = ledger.wait_outboxes_published(30)
        # Counted once everything has settled, so a late second effect is seen too.
        effects = ledger.effects(stream.case_ids)
    finally:
        if stream:
            stream.stop()  # a failed scenario leaves no desk posting into the teardown
        peak = sampler.stop() if sampler else 0
        ledger.close()

    lost, duplicated = effects.lost(), effects.duplicated()
    row.figures.update(
        {
            "accepted": f"{len(stream.accepted)}/{stream.posted}",
            "accepted while the broker was down": accepted_while_down,
            "broker down (s)": round(up - down, 1),
            "lost": len(lost),
            "duplicated": len(duplicated),
            "peak outbox backlog": peak,
            "time to drain (s)": round(drain_time, 1),
            "client retries": stream.retries,
            "SMS requests / messages": f"{gateway.requests}/{len(gateway.messages)}",
        }
    )
    assert stream.refused == []
    assert len(stream.case_ids) == len(set(stream.case_ids)) == stream.posted
    # The outage was real: intake kept answering, and its events waited in the outbox.
    assert accepted_while_down > 0
    assert peak > 0
    assert drained.lost() == []
    assert (lost, duplicated) == ([], [])
    assert undelivered == []
    assert unpublished == {}  # every service's relay published what waited for the broker
