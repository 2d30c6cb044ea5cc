"""Network faults: routing's consumer reaches the broker and its database through a TCP proxy.

The whole system runs as compose declares it; only ``routing-consumer`` is restarted
behind two proxies (AMQP, and PostgreSQL when the suite runs on it) with a 2-second
heartbeat. Visits are posted through intake all along, while the proxy cuts the link
(both sides closed), stalls it (a black hole: sockets open, nothing forwarded) or
delays it. Detection is read from the consumer's own log lines, timestamped by the
process; recovery is when it consumes (or applies events) again after the heal.

Must hold: a dead broker or database link is noticed within two heartbeats (plus a
stated margin for the log line and the consumer's half-second poll), and every visit
intake accepted is routed exactly once, after the heal if not before.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import threading
import time
import urllib.parse
import uuid

import pytest
import requests
from proofkit import size
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from tcp_proxy import TcpProxy

from eventbus import testing

pytestmark = pytest.mark.proof

HEARTBEAT = 2  # seconds: AMQP_HEARTBEAT of the proxied consumer
MARGIN = 1.0  # seconds: the consumer polls its connection every 0.5 s, plus logging
CONSUMER = "routing-consumer"
UNIT = "xc-zhishan"
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
PACE = 0.2  # seconds between two visits: a busy desk, not a benchmark
FAULT = size(4.0, 20.0)  # seconds a cut or a delay lasts
STALL = size(2 * HEARTBEAT + 2.0, 20.0)  # a stall must outlast the detection bound
CATCH_UP = 90.0  # seconds allowed for the backlog to be routed after a heal


# -- the consumer behind the proxies ------------------------------------------------------


class Link:
    """Routing's consumer running behind an AMQP proxy and (on PostgreSQL) a database one."""

    def __init__(self, system, amqp: TcpProxy, db: TcpProxy | None):
        self.system = system
        self.amqp = amqp
        self.db = db

    def start(self) -> None:
        """Replace the system's routing consumer with one that goes through the proxies."""
        system = self.system
        system.stop(CONSUMER)
        spec = system.specs[CONSUMER]
        env = system.environment(spec, CONSUMER)
        env["AMQP_HEARTBEAT"] = str(HEARTBEAT)
        env["AMQP_URL"] = _through(system.amqp_url, self.amqp.port)
        if self.db is not None:
            url = make_url(system.database_urls["routing"])
            env["ROUTING_DATABASE_URL"] = url.set(
                host="127.0.0.1", port=self.db.port
            ).render_as_string(hide_password=False)
        system.mark_log(CONSUMER)
        log = open(system.log_path(CONSUMER), "ab")  # noqa: SIM115 - owned by the process
        system.processes[CONSUMER] = subprocess.Popen(
            spec.argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        system.wait_consuming(CONSUMER)

    def lines_since(self, since: float, message: str) -> list[float]:
        """Return the times (epoch seconds) of the consumer's log lines with that message."""
        found = []
        for line in self.system.log_path(CONSUMER).read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("message") != message:
                continue
            at = dt.datetime.strptime(record["time"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if at >= since:
                found.append(at)
        return found

    def first_line(self, since: float, message: str, timeout: float) -> float | None:
        """Wait for the first log line with that message at or after ``since``."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.lines_since(since, message)
            if found or time.monotonic() > deadline:
                return min(found) if found else None
            time.sleep(0.1)


def _through(amqp_url: str, port: int) -> str:
    parts = urllib.parse.urlsplit(amqp_url)
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{port}"
    return parts._replace(netloc=netloc).geturl()


@pytest.fixture(scope="module")
def link(system, db_backend):
    amqp_upstream = urllib.parse.urlsplit(system.amqp_url)
    with TcpProxy(amqp_upstream.hostname, amqp_upstream.port or 5672) as amqp:
        if db_backend == "postgresql":
            pg = make_url(system.database_urls["routing"])
            with TcpProxy(pg.host or "127.0.0.1", pg.port or 5432) as db:
                running = Link(system, amqp, db)
                running.start()
                yield running
        else:
            running = Link(system, amqp, None)
            running.start()
            yield running


@pytest.fixture(autouse=True)
def healed(link):
    """Leave the links passing whatever a scenario did."""
    yield
    link.amqp.pass_()
    if link.db is not None:
        link.db.pass_()


# -- a desk posting visits all along --------------------------------------------------------


class Desk:
    """Post one-issue visits signed over to UNIT at a steady pace until stopped."""

    def __init__(self, system):
        self.system = system
        self.prefix = uuid.uuid4().hex[:8]
        self.accepted: list[tuple[float, str]] = []  # (epoch seconds, case id)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Desk:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(90)
        assert not self._thread.is_alive(), "the desk never finished posting"

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            self._post(n)
            self._stop.wait(PACE)

    def _post(self, n: int) -> None:
        body = {
            "channel": "daily",
            "received_at": dt.datetime.now(SHANGHAI).isoformat(timespec="seconds"),
            "headcount": 1,
            "visitor": {"name": "访客", "phone": f"139{n:08d}"},
            "issues": [
                {
                    "category": "land",
                    "summary": f"土地纠纷 {n}",
                    "disposition": {"action": "sign_over", "unit": UNIT},
                }
            ],
        }
        headers = {**self.system.token("city-org"), "Idempotency-Key": f"{self.prefix}-{n}"}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            # Intake is not behind the proxy: a refusal here is a real failure, retried
            # as a desk client would with the same key.
            try:
                r = requests.post(
                    self.system.url("intake", "/v1/visits"), json=body, headers=headers, timeout=10
                )
                if r.status_code == 201:
                    for case in r.json()["cases"]:
                        self.accepted.append((time.time(), case["case_id"]))
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"visit {n} never accepted")

    def cases(self) -> list[str]:
        return [case for _, case in self.accepted]

    def accepted_between(self, start: float, end: float) -> int:
        return sum(1 for at, _ in self.accepted if start <= at <= end)


def _assignments(system, case_ids) -> dict[str, int]:
    engine = create_engine(system.database_urls["routing"])
    try:
        with engine.connect() as conn:
            counts = dict(
                conn.execute(
                    text("SELECT case_id, count(*) FROM assignments GROUP BY case_id")
                ).all()
            )
    finally:
        engine.dispose()
    return {case: counts.get(case, 0) for case in case_ids}


def _routed_once(system, case_ids) -> tuple[float, dict[str, int]]:
    """Wait until every case has an assignment; return when (epoch) and the counts."""
    deadline = time.monotonic() + CATCH_UP
    while True:
        counts = _assignments(system, case_ids)
        if all(counts.values()) or time.monotonic() > deadline:
            return time.time(), counts
        time.sleep(0.2)


def _fault(desk: Desk, start, heal, duration: float) -> tuple[float, float]:
    """Let visits flow, apply the fault for ``duration``, heal it; return (fault, heal) times."""
    time.sleep(1.0)  # a few visits before the fault
    at = time.time()
    start()
    time.sleep(duration)
    healed_at = time.time()
    heal()
    time.sleep(1.0)  # a few visits after the heal
    return at, healed_at


def _check_exactly_once(
    proof, system, desk: Desk, at: float, healed_at: float, caught: float, counts: dict[str, int]
) -> None:
    lost = [c for c, n in counts.items() if n == 0]
    doubled = [c for c, n in counts.items() if n > 1]
    proof.figure("visits accepted", len(counts))
    proof.figure("accepted during the fault", desk.accepted_between(at, healed_at))
    proof.figure("lost", len(lost))
    proof.figure("routed twice", len(doubled))
    proof.figure("caught up after heal (s)", round(caught - healed_at, 2))
    assert desk.accepted_between(at, healed_at) > 0, "no visit arrived while the link was down"
    assert (lost, doubled) == ([], [])


# -- the scenarios -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["cut", "stall"])
def test_broker_link_fault_is_detected_within_two_heartbeats_and_nothing_is_lost(
    proof, system, link, mode
):
    duration = FAULT if mode == "cut" else STALL
    what = {
        "cut": "both sides of the consumer's broker connections closed",
        "stall": "the consumer's broker connections black-holed (open, nothing forwarded)",
    }[mode]
    proof.row(
        f"network fault: broker link {mode}",
        done=f"{what} for {duration:g} s while visits are posted every {PACE:g} s; "
        f"heartbeat {HEARTBEAT} s",
        must_hold=f"dropped link noticed within 2 heartbeats + {MARGIN:g} s; "
        "every accepted visit routed exactly once",
    )
    start = {"cut": link.amqp.cut, "stall": link.amqp.stall}[mode]
    with Desk(system) as desk:
        at, healed_at = _fault(desk, start, link.amqp.pass_, duration)
    dropped = link.first_line(at, "broker connection dropped", timeout=5)
    consuming = link.first_line(healed_at, "consuming", timeout=CATCH_UP)
    caught, counts = _routed_once(system, desk.cases())

    assert dropped is not None, f"the consumer never noticed the {mode}"
    detection = dropped - at
    proof.figure("detected after (s)", round(detection, 2))
    assert consuming is not None, "the consumer never consumed again after the heal"
    proof.figure("consuming again after heal (s)", round(consuming - healed_at, 2))
    _check_exactly_once(proof, system, desk, at, healed_at, caught, counts)
    assert detection <= 2 * HEARTBEAT + MARGIN


def test_broker_link_delay_is_not_taken_for_a_dead_link(proof, system, link):
    latency = 0.2
    proof.row(
        "network fault: broker link delayed",
        done=f"{latency * 1000:g} ms added each way on the consumer's broker link for "
        f"{FAULT:g} s while visits are posted",
        must_hold="no reconnect; every accepted visit routed exactly once",
    )
    with Desk(system) as desk:
        at, healed_at = _fault(desk, lambda: link.amqp.delay(latency), link.amqp.pass_, FAULT)
    caught, counts = _routed_once(system, desk.cases())
    dropped = link.lines_since(at, "broker connection dropped")
    proof.figure("reconnects", len(dropped))
    _check_exactly_once(proof, system, desk, at, healed_at, caught, counts)
    assert dropped == []


def _needs_a_network_database(proof, link, scenario: str, done: str, must_hold: str) -> None:
    proof.row(scenario, done=done, must_hold=must_hold)
    if link.db is None:
        proof.figure("not applicable", "SQLite is a local file: no network link to break")
        pytest.skip("SQLite has no network link; this scenario runs on PostgreSQL")


def test_database_link_cut_is_retried_in_place_and_nothing_is_lost(proof, system, link):
    _needs_a_network_database(
        proof,
        link,
        "network fault: database link cut",
        done=f"every connection from the routing consumer to PostgreSQL closed (and refused) "
        f"for {FAULT:g} s while visits are posted",
        must_hold=f"the failure noticed at the next event, within 2 heartbeats + {MARGIN:g} s; "
        "every accepted visit routed exactly once (none dead-lettered for the outage)",
    )
    with Desk(system) as desk:
        at, healed_at = _fault(desk, link.db.cut, link.db.pass_, FAULT)
    noticed = link.first_line(at, "database unavailable; retrying event", timeout=5)
    applied = link.first_line(healed_at, "event applied", timeout=CATCH_UP)
    caught, counts = _routed_once(system, desk.cases())

    assert noticed is not None, "the consumer never noticed the database was away"
    proof.figure("detected after (s)", round(noticed - at, 2))
    assert applied is not None, "no event applied after the heal"
    proof.figure("applying again after heal (s)", round(applied - healed_at, 2))
    _check_exactly_once(proof, system, desk, at, healed_at, caught, counts)
    assert noticed - at <= 2 * HEARTBEAT + MARGIN
    dead = testing.queue_depth(system.amqp_url, "routing.dead")
    proof.figure("dead-lettered", dead)
    assert dead == 0


def test_database_link_stall_is_detected_and_nothing_is_lost(proof, system, link):
    _needs_a_network_database(
        proof,
        link,
        "network fault: database link stalled",
        done=f"the routing consumer's PostgreSQL connections black-holed for {STALL:g} s "
        "while visits are posted",
        must_hold=f"a database call unanswered for a heartbeat has its link broken: noticed "
        f"within 2 heartbeats + {MARGIN:g} s; every accepted visit routed exactly once",
    )
    with Desk(system) as desk:
        at, healed_at = _fault(desk, link.db.stall, link.db.pass_, STALL)
    # libpq has no read timeout, and through a userland proxy the kernel keeps
    # acknowledging, so TCP never notices: the consumer's statement watch does.
    noticed = link.first_line(at, "database call unanswered; link broken", timeout=5)
    applied = link.first_line(healed_at, "event applied", timeout=CATCH_UP)
    caught, counts = _routed_once(system, desk.cases())

    assert noticed is not None, "the consumer never noticed the stalled database link"
    proof.figure("detected after (s)", round(noticed - at, 2))
    assert applied is not None, "no event applied after the heal"
    proof.figure("applying again after heal (s)", round(applied - healed_at, 2))
    _check_exactly_once(proof, system, desk, at, healed_at, caught, counts)
    assert noticed - at <= 2 * HEARTBEAT + MARGIN


def test_the_proxies_really_carried_the_consumer(link):
    """Guard the set-up: the scenarios above would prove nothing around the proxies."""
    assert link.amqp.accepted >= 1
    if link.db is not None:
        assert link.db.accepted >= 1
