"""What an operator sees of the running system: metrics across workers, logs by trace."""

from __future__ import annotations

import contextlib
import json
import re
import time

import pytest
import requests

pytestmark = pytest.mark.e2e


def _count(metrics_text: str, method: str, endpoint: str) -> float:
    pattern = re.compile(
        r"^http_requests_total\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$", re.MULTILINE
    )
    total = 0.0
    for match in pattern.finditer(metrics_text):
        labels = match.group("labels")
        if f'method="{method}"' in labels and f'endpoint="{endpoint}"' in labels:
            total += float(match.group("value"))
    return total


def test_request_counts_add_up_across_gunicorn_workers(system):
    url = system.url("intake", "/v1/cases/city-org-20000101-0001")
    before = _count(requests.get(system.url("intake", "/metrics")).text, "GET", "/v1/cases/<ref>")
    sessions = [requests.Session() for _ in range(8)]  # separate connections reach both workers
    for i in range(40):
        assert sessions[i % 8].get(url, headers=system.token()).status_code == 404
    after = _count(requests.get(system.url("intake", "/metrics")).text, "GET", "/v1/cases/<ref>")
    assert after - before == 40


def test_one_case_can_be_followed_through_the_logs_by_its_trace_id(system):
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    body = {
        "channel": "phone",
        "received_at": "2026-11-20T09:00:00+08:00",
        "headcount": 1,
        "visitor": {"name": "陈某", "phone": "13800000001"},
        "issues": [
            {
                "category": "land",
                "summary": "宅基地纠纷",
                "disposition": {"action": "sign_over", "unit": "xc-shiting"},
            }
        ],
    }
    r = requests.post(
        system.url("intake", "/v1/visits"),
        json=body,
        headers={**system.token(), "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
    )
    assert r.status_code == 201
    assert r.headers["X-Trace-Id"] == trace_id
    deadline = time.monotonic() + 20
    seen: set[str] = set()
    while time.monotonic() < deadline and seen != {"intake", "routing", "supervision", "notify"}:
        for path in system.folder.glob("*.log"):
            for line in path.read_text(errors="replace").splitlines():
                if trace_id in line:
                    with contextlib.suppress(ValueError, KeyError):
                        seen.add(json.loads(line)["service"])
        time.sleep(0.2)
    assert seen == {"intake", "routing", "supervision", "notify"}
    for path in system.folder.glob("*.log"):
        text = path.read_text(errors="replace")
        assert "13800000001" not in text and "陈某" not in text
