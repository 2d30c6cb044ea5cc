"""Two consumers on every queue and two relays per service: no loss, no duplicated effect."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.e2e

VISITS = 60
# A second replica of every long-running worker. The schedulers' exactly-once firing under
# replicas is counted in services/supervision (ladder steps fall due a month out, not here).
EXTRA = (
    "intake-consumer-2",
    "routing-webhooks-2",
    "supervision-scheduler-2",
    "notify-deliver-2",
    "routing-consumer-2",
    "supervision-consumer-2",
    "notify-consumer-2",
    "intake-relay-2",
    "routing-relay-2",
    "supervision-relay-2",
    "notify-relay-2",
)


def _visit(n: int) -> dict:
    return {
        "channel": "online",
        "received_at": "2026-11-21T10:00:00+08:00",
        "headcount": 2,
        "visitor": {"name": "网民", "phone": f"1371111{n:04d}"},
        "issues": [
            {
                "category": "village_redevelopment",
                "summary": f"新村改造 {n}",
                "disposition": {"action": "sign_over", "unit": "ds-xipu"},
            }
        ],
    }


def _count_by_case(url: str, sql: str, case_ids: list[str]) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            counts = dict(conn.execute(text(sql)).all())
    finally:
        engine.dispose()
    return {c: counts.get(c, 0) for c in case_ids}


def _applied(system, name: str) -> int:
    return system.log_path(name).read_text(errors="replace").count('"message": "event applied"')


def test_two_of_everything_process_a_stream_once(system):
    for name in EXTRA:
        system.mark_log(name)
        system.start(name)
    for name in EXTRA:
        if "-consumer-" in name:
            system.wait_consuming(name)
    try:
        headers = system.token("city-org")

        def post(n):
            r = requests.post(
                system.url("intake", "/v1/visits"),
                json=_visit(n),
                headers={**headers, "Idempotency-Key": f"scale-{n}-{time.time()}"},
                timeout=30,
            )
            assert r.status_code == 201, r.text
            return r.json()["cases"][0]["case_id"]

        with ThreadPoolExecutor(8) as pool:
            case_ids = list(pool.map(post, range(VISITS)))

        checks = {
            "routing": "SELECT case_id, count(*) FROM assignments GROUP BY case_id",
            "supervision": "SELECT case_id, count(*) FROM supervised_cases "
            "WHERE due_at IS NOT NULL GROUP BY case_id",
            "notify": "SELECT case_id, count(*) FROM notifications WHERE kind = 'receipt' "
            "GROUP BY case_id",
        }
        deadline = time.monotonic() + 90
        while True:
            counts = {
                service: _count_by_case(system.database_urls[service], sql, case_ids)
                for service, sql in checks.items()
            }
            done = all(n >= 1 for per_case in counts.values() for n in per_case.values())
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        for service, per_case in counts.items():
            assert [c for c, n in per_case.items() if n == 0] == [], f"{service} lost cases"
            assert [c for c, n in per_case.items() if n > 1] == [], f"{service} doubled effects"
        # Both consumers of each queue really took part.
        for service in ("routing", "supervision", "notify"):
            assert _applied(system, f"{service}-consumer") > 0
            assert _applied(system, f"{service}-consumer-2") > 0
    finally:
        for name in EXTRA:
            system.stop(name)
