"""Test helpers for the services' processes, as `nighttalk <service> <command>` starts them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from servicekit.localsystem import free_port

# Long enough for any process to read its settings and stop; one that started anyway
# would run until stopped.
REFUSAL_SECONDS = 60


def start_refused(
    service: str,
    command: list[str],
    *,
    database_url: str,
    amqp_url: str,
    var_dir: Path,
    **settings: str,
) -> subprocess.CompletedProcess:
    """Start a service's process with ``settings`` in its environment; return how it ended.

    Raise AssertionError if it is still running after ``REFUSAL_SECONDS``: it started
    with settings it should have refused.
    """
    env = dict(
        os.environ,
        **{f"{service.upper()}_DATABASE_URL": database_url},
        AMQP_URL=amqp_url,
        NIGHTTALK_VAR_DIR=str(var_dir),
        PORT=str(free_port()),
        WEB_CONCURRENCY="1",
        **settings,
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    nighttalk = Path(sys.executable).with_name("nighttalk")
    try:
        return subprocess.run(
            [str(nighttalk), service, *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=REFUSAL_SECONDS,
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"nighttalk {service} {' '.join(command)} started with {settings}"
        ) from None
