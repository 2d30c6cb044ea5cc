"""kill -9 of every process kind at random moments during a stream of visits.

Every long-running process compose declares is killed with SIGKILL while visits keep
coming: each API's gunicorn worker (its master starts a new one) and master (the whole
container dies; restarted as compose's ``restart: unless-stopped`` does), and every
consumer, relay, scheduler and delivery worker (restarted at once, likewise).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter

import pytest
from proofkit import size
from stream import Ledger, VisitStream, system_sending_sms

from servicekit.localsystem import SERVICES

# Starting the system, a stream and its drain outlast the usual 300 s per test on a
# loaded machine; the full size streams for minutes.
pytestmark = [pytest.mark.proof, pytest.mark.timeout(size(900, 2400))]

VISITS = size(40, 400)
RATE = size(2.5, 4.0)  # visits per second
KILLS_EACH = size(1, 3)  # how many times each kind is killed
DRAIN_LIMIT = size(300.0, 600.0)  # how long to wait for the effects before calling them lost


@pytest.fixture(scope="module")
def system(module_amqp_url, gateway, db_backend, proof_logs):
    """Yield the whole system, sending SMS to the test's gateway."""
    folder = proof_logs / "test_kill_9"
    folder.mkdir()
    with system_sending_sms(module_amqp_url, db_backend, folder, gateway) as running:
        yield running


def kinds(system) -> list[str]:
    """Return every process kind to kill: each long-running process, an API's worker too."""
    names = system.long_running()
    apis = [n for n in names if n.endswith("-api")]
    return names + [f"{api} worker" for api in apis]


def gunicorn_workers(system, api: str) -> list[int]:
    master = system.processes[api].pid
    found = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


class Killer:
    """Kill each kind at its planned moment, and restart what compose would restart.

    Each kill runs in a thread of its own, so a slow restart does not delay the next
    kill past the stream; kills of one kind wait for each other.
    """

    def __init__(self, system, plan: list[tuple[float, str]], rng: random.Random) -> None:
        self.system = system
        self.rng = rng
        self.done: Counter = Counter()
        self.moments: list[float] = []  # when each kill happened, monotonic
        self.errors: list[str] = []
        self._locks = {kind: threading.Lock() for _, kind in plan}
        self._threads = [
            threading.Thread(target=self._at, args=(at, kind), daemon=True) for at, kind in plan
        ]

    def start(self) -> Killer:
        self._began = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self._threads), "the killer did not finish"

    def _at(self, at: float, kind: str) -> None:
        time.sleep(max(0.0, self._began + at - time.monotonic()))
        with self._locks[kind]:
            try:
                self._kill(kind)
                self.done[kind] += 1
            except Exception as exc:  # noqa: BLE001 - reported by the test, not lost in a thread
                self.errors.append(f"{kind}: {exc!r}")

    def _kill(self, kind: str) -> None:
        system = self.system
        if kind.endswith(" worker"):
            api = kind.removesuffix(" worker")
            deadline = time.monotonic() + 30
            while not (workers := gunicorn_workers(system, api)):
                # Its master was itself just restarted and has not forked yet.
                assert time.monotonic() < deadline, f"no gunicorn worker under {api}"
                time.sleep(0.1)
            os.kill(self.rng.choice(workers), signal.SIGKILL)
            self.moments.append(time.monotonic())
            return
        system.mark_log(kind)
        system.kill(kind)
        self.moments.append(time.monotonic())
        system.start(kind)


def worker_before_master(plan: list[tuple[float, str]]) -> list[tuple[float, str]]:
    """Return the plan with each API's kills taken in pairs, its worker's first.

    A worker's kill waits for a worker to exist: planned just after its master's, it waits
    for the restarted master to boot and fork (seen: two seconds on a loaded machine),
    and a kill near the stream's end then came after it. Paired so, a worker's kill never
    follows its master's but from an earlier pair.
    """
    apis = {kind.removesuffix(" worker") for _, kind in plan if kind.endswith(" worker")}
    paired = [(at, kind) for at, kind in plan if kind.removesuffix(" worker") not in apis]
    for api in apis:
        ats = sorted(at for at, kind in plan if kind in (api, f"{api} worker"))
        paired += [(at, f"{api} worker" if n % 2 == 0 else api) for n, at in enumerate(ats)]
    return sorted(paired)


def test_kill_9_of_every_process_kind_loses_and_duplicates_nothing(system, gateway, proof):
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    victims = kinds(system) * KILLS_EACH
    duration = VISITS / RATE
    # Random moments within the stream, leaving its first and last tenth alone, so
    # every kill happens while visits keep coming.
    plan = worker_before_master(
        sorted((rng.uniform(0.1, 0.9) * duration, kind) for kind in victims)
    )
    row = proof.row(
        "kill -9 of every process kind",
        done=(
            f"{VISITS} visits posted at {RATE:g}/s; SIGKILL {KILLS_EACH}× at random moments to "
            f"each of {len(set(victims))} process kinds (every long-running process compose "
            "declares, and each API's gunicorn worker); restarted as compose would"
        ),
        must_hold=(
            "every case answered 201 is routed exactly once and its visitor notified exactly "
            "once (receipt SMS and routed SMS); every process is back at work"
        ),
    )
    row.figures["seed"] = seed
    ledger = Ledger(system, gateway)
    try:
        ledger.wait_unit_known()
        stream = VisitStream(system, VISITS, RATE).start()
        killer = Killer(system, plan, rng).start()
        killer.join(duration + 60)
        stream.join(duration + 180)
        ledger.wait_for_effects(stream.case_ids, DRAIN_LIMIT)
        undelivered = ledger.wait_delivered(stream.case_ids, 60)
        unpublished = ledger.wait_outboxes_published(30)
        # Counted once everything has settled, so a late second effect is seen too.
        effects = ledger.effects(stream.case_ids)
    finally:
        ledger.close()

    lost, duplicated = effects.lost(), effects.duplicated()
    row.figures.update(
        {
            "accepted": f"{len(stream.accepted)}/{VISITS}",
            "kills": sum(killer.done.values()),
            "kinds killed": len(killer.done),
            "kills while visits kept coming": sum(m <= stream.ended for m in killer.moments),
            "lost": len(lost),
            "duplicated": len(duplicated),
            "client retries": stream.retries,
            "SMS requests / messages": f"{gateway.requests}/{len(gateway.messages)}",
        }
    )
    assert killer.errors == []
    assert killer.done == Counter(victims)
    assert all(m <= stream.ended for m in killer.moments), "a kill came after the stream"
    assert stream.refused == []
    assert len(stream.case_ids) == len(set(stream.case_ids)) == VISITS
    assert (lost, duplicated) == ([], [])
    assert undelivered == []
    assert unpublished == {}  # every relay back at work: no event left behind
    # Every restarted process is back at work: alive, the APIs ready, consumers consuming.
    for name in system.long_running():
        assert system.processes[name].poll() is None, f"{name} died; see {system.log_path(name)}"
        if name.endswith("-consumer"):
            system.wait_consuming(name)
    for service in SERVICES:
        system.wait_ready(service)
