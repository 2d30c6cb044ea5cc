"""A bad number among routing's settings stops its processes at start, naming it.

Read at each use, a bad one failed every transfer, extension or webhook delivery instead
(a 500, or an event retried to the dead letters) while the process looked healthy.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from routing import usecases, webhooks
from routing.app import create_app
from servicekit.localsystem import free_port

BAD_SETTINGS = [
    ("ROUTING_MAX_MOVES", "two"),
    ("ROUTING_MAX_MOVES", "-1"),
    ("ROUTING_AUTO_EXTENSION_DAYS", "15d"),
    ("ROUTING_AUTO_EXTENSION_DAYS", "-15"),
    ("ROUTING_WEBHOOK_MAX_ATTEMPTS", "0"),
    ("ROUTING_WEBHOOK_TIMEOUT", "10s"),
    ("ROUTING_WEBHOOK_TIMEOUT", "0"),
]


@pytest.mark.parametrize(("variable", "value"), BAD_SETTINGS)
def test_a_bad_setting_stops_the_api_at_start_naming_it(
    monkeypatch, database, amqp_url, variable, value
):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=variable):
        create_app({"DATABASE_URL": database, "AMQP_URL": amqp_url, "TESTING": True})


def test_the_settings_read_as_written(monkeypatch):
    for variable, value in {
        "ROUTING_MAX_MOVES": "0",
        "ROUTING_AUTO_EXTENSION_DAYS": "7",
        "ROUTING_WEBHOOK_MAX_ATTEMPTS": "3",
        "ROUTING_WEBHOOK_TIMEOUT": "0.5",
    }.items():
        monkeypatch.setenv(variable, value)
    assert (usecases.max_moves(), usecases.auto_extension_days()) == (0, 7)
    assert (webhooks.max_attempts(), webhooks.timeout()) == (3, 0.5)


@pytest.mark.parametrize("command", [["consume"], ["webhooks"], ["api", "--host", "127.0.0.1"]])
def test_a_bad_setting_stops_routings_processes_naming_it(
    database, amqp_url, tmp_path: Path, command
):
    env = dict(
        os.environ,
        ROUTING_DATABASE_URL=database,
        AMQP_URL=amqp_url,
        NIGHTTALK_VAR_DIR=str(tmp_path),
        PORT=str(free_port()),
        WEB_CONCURRENCY="1",
        ROUTING_WEBHOOK_TIMEOUT="10s",
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    nighttalk = Path(sys.executable).with_name("nighttalk")
    try:
        ended = subprocess.run(
            [str(nighttalk), "routing", *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,  # a process that started anyway would run until stopped
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"nighttalk routing {command[0]} started with ROUTING_WEBHOOK_TIMEOUT=10s")
    assert ended.returncode != 0
    assert "ROUTING_WEBHOOK_TIMEOUT" in ended.stderr, ended.stderr[-2000:]
    assert "Traceback" not in ended.stderr, ended.stderr[-2000:]
