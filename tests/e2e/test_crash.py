"""kill -9 in the middle of a stream of visits: nothing accepted is lost or routed twice."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid

import pytest
import requests
from sqlalchemy import create_engine, text

from eventbus import testing

pytestmark = pytest.mark.e2e

VISITS = 60
PACE = 0.05  # seconds between visits: a busy desk, not a benchmark


def _visit(n: int) -> dict:
    return {
        "channel": "daily",
        "received_at": "2026-11-20T10:00:00+08:00",
        "headcount": 1,
        "visitor": {"name": "访客", "phone": f"1390000{n:04d}"},
        "issues": [
            {
                "category": "land",
                "summary": f"土地纠纷 {n}",
                "disposition": {"action": "sign_over", "unit": "xc-zhishan"},
            }
        ],
    }


def _post_until_accepted(system, n: int, key: str) -> dict:
    """Post like a reception client: retry with the same Idempotency-Key until accepted."""
    deadline = time.monotonic() + 60
    while True:
        try:
            r = requests.post(
                system.url("intake", "/v1/visits"),
                json=_visit(n),
                headers={**system.token("city-org"), "Idempotency-Key": key},
                timeout=10,
            )
            if r.status_code == 201:
                return r.json()
        except requests.RequestException:
            pass  # the worker died under us: the clerk's client retries
        if time.monotonic() > deadline:
            raise AssertionError(f"visit {n} never accepted")
        time.sleep(0.1)


def _stream(system, accepted: list, prefix: str):
    for n in range(VISITS):
        accepted.append(_post_until_accepted(system, n, f"{prefix}-{n}"))
        time.sleep(PACE)


def _assignments_per_case(system, case_ids):
    engine = create_engine(system.database_urls["routing"])
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT case_id, count(*) FROM assignments GROUP BY case_id")
            ).all()
    finally:
        engine.dispose()
    counts = dict(rows)
    return {case_id: counts.get(case_id, 0) for case_id in case_ids}


def _drain_partner(system, case_ids, timeout: float = 60.0) -> dict[str, set[str]]:
    """Read the partner queue until every case has arrived; return event ids per case.

    Copies of earlier tests' cases (a relay may still publish one) are read and ignored.
    """
    expected = set(case_ids)
    ids: dict[str, set[str]] = {}
    deadline = time.monotonic() + timeout
    while not expected <= ids.keys() and time.monotonic() < deadline:
        for _, props, _ in testing.get_messages(
            system.amqp_url, "partner.xc-zhishan", count=len(expected), timeout=2
        ):
            subject = props.headers["ce-subject"]
            if subject in expected:
                ids.setdefault(subject, set()).add(props.message_id)
    return ids


def _wait_all_routed(system, case_ids, timeout=90.0):
    deadline = time.monotonic() + timeout
    while True:
        counts = _assignments_per_case(system, case_ids)
        if all(c >= 1 for c in counts.values()) or time.monotonic() > deadline:
            return counts
        time.sleep(0.2)


def _kill_a_worker(system, name: str) -> None:
    """kill -9 one gunicorn worker of an API; its master starts a new one."""
    master = system.processes[name].pid
    workers = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True)
    pids = [int(p) for p in workers.stdout.split()]
    assert pids, f"no workers under gunicorn master {master}"
    os.kill(pids[0], signal.SIGKILL)


@pytest.mark.parametrize("victim", ["routing-consumer", "intake-api"])
def test_kill_9_mid_stream_loses_and_duplicates_nothing(system, victim):
    accepted: list[dict] = []
    prefix = f"crash-{victim}-{uuid.uuid4().hex[:6]}"
    poster = threading.Thread(target=_stream, args=(system, accepted, prefix))
    poster.start()
    while len(accepted) < VISITS // 3:
        time.sleep(0.01)
    if victim.endswith("-consumer"):
        system.mark_log(victim)
        system.kill(victim)
        time.sleep(0.5)  # the stream goes on while the consumer is down
        system.start(victim)
        system.wait_consuming(victim)
    else:
        _kill_a_worker(system, victim)
    poster.join(120)
    assert not poster.is_alive()

    case_ids = [c["case_id"] for visit in accepted for c in visit["cases"]]
    assert len(case_ids) == len(set(case_ids)) == VISITS
    counts = _wait_all_routed(system, case_ids)
    lost = [c for c, n in counts.items() if n == 0]
    doubled = [c for c, n in counts.items() if n > 1]
    assert (lost, doubled) == ([], [])

    ids = _drain_partner(system, case_ids)
    assert set(ids) == set(case_ids)  # every case reached its partner
    # A crash between the broker's confirm and marking the row sent can publish a row
    # twice; it is then the same event (same ce-id), which a partner recognises.
    assert [case for case, event_ids in ids.items() if len(event_ids) > 1] == []
