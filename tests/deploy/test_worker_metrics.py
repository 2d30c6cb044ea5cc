"""Every worker process serves its metrics on METRICS_PORT, as the configuration page says.

The scheduler, notify's delivery worker and routing's webhook sender used to ignore it
(only relays and consumers served): an operator's scrape of them found nothing there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from eventbus.testing import eventually
from servicekit.localsystem import free_port

NIGHTTALK = Path(sys.executable).with_name("nighttalk")


def scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            return answer.read().decode()
    except (urllib.error.URLError, OSError):
        return None


@pytest.mark.parametrize(
    ("service", "command"),
    [("supervision", "scheduler"), ("notify", "deliver"), ("routing", "webhooks")],
)
def test_a_worker_serves_its_metrics_on_metrics_port(service, command, amqp_url, tmp_path):
    port = free_port()
    env = dict(
        os.environ,
        **{f"{service.upper()}_DATABASE_URL": f"sqlite:///{tmp_path / service}.db"},
        AMQP_URL=amqp_url,
        NIGHTTALK_VAR_DIR=str(tmp_path),
        METRICS_PORT=str(port),
        METRICS_ADDR="127.0.0.1",
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    subprocess.run([str(NIGHTTALK), service, "migrate"], env=env, check=True, capture_output=True)
    process = subprocess.Popen(
        [str(NIGHTTALK), service, command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        page = eventually(
            lambda: process.poll() is None and scrape(port),
            f"{service} {command} serving /metrics on {port}",
            timeout=15,
        )
        assert "process_resident_memory_bytes" in page
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr[-2000:]
