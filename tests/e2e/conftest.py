"""Start the real system for end-to-end tests: every process as ``make run`` starts it.

Each process runs the installed ``nighttalk`` command against a private RabbitMQ
vhost and fresh databases of the backend under test, on free ports.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from eventbus import testing
from servicekit import auth

SERVICES = ("intake", "routing", "supervision", "notify")
NIGHTTALK = str(Path(sys.executable).with_name("nighttalk"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class System:
    """The running processes of the four services and how to reach them."""

    env: dict[str, str]
    folder: Path
    ports: dict[str, int]
    amqp_url: str
    database_urls: dict[str, str]
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    marks: dict[str, int] = field(default_factory=dict)

    def url(self, service: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def token(self, unit: str = "city-org", *roles: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {auth.mint(unit, list(roles) or ['reception'])}"}

    def log_path(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    def start(self, name: str) -> subprocess.Popen:
        """Start (or restart) one process by name, e.g. ``routing-consume``."""
        service, command, *_instance = name.split("-")  # e.g. routing-consume-2
        argv = [NIGHTTALK, service, command]
        if command == "api":
            argv += ["--port", str(self.ports[service]), "--host", "127.0.0.1"]
        log = open(self.log_path(name), "ab")  # noqa: SIM115 - owned by the process
        proc = subprocess.Popen(
            argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes[name] = proc
        return proc

    def kill(self, name: str) -> None:
        """kill -9 a process (its whole process group: a gunicorn master and workers)."""
        proc = self.processes[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop(self, name: str) -> None:
        """Stop one process gracefully (SIGTERM), as an operator scaling down would."""
        proc = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)

    def stop_all(self) -> None:
        for proc in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.processes.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)

    def wait_ready(self, service: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.url(service, "/readyz"), timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"{service} API not ready; see {self.log_path(service + '-api')}")

    def wait_consuming(self, name: str, timeout: float = 60.0) -> None:
        """Wait until a consumer process logs, since its last start, that it consumes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._logged_since_mark(name, '"message": "consuming"'):
                return
            if self.processes[name].poll() is not None:
                raise AssertionError(f"{name} exited; see {self.log_path(name)}")
            time.sleep(0.1)
        raise AssertionError(f"{name} did not start consuming; see {self.log_path(name)}")

    def _logged_since_mark(self, name: str, needle: str) -> bool:
        path = self.log_path(name)
        if not path.exists():
            return False
        return needle in path.read_text(errors="replace")[self.marks.get(name, 0) :]

    def mark_log(self, name: str) -> None:
        """Remember the end of a process's log, so a restart's lines can be told apart."""
        path = self.log_path(name)
        self.marks[name] = len(path.read_text(errors="replace")) if path.exists() else 0


PROCESSES = (
    "intake-api",
    "intake-relay",
    "routing-api",
    "routing-consume",
    "routing-relay",
    "supervision-api",
    "supervision-consume",
    "supervision-relay",
    "notify-api",
    "notify-consume",
    "notify-relay",
)


@pytest.fixture(scope="session")
def system(amqp_url, db_backend, tmp_path_factory):
    """Yield the whole system running; stop it afterwards."""
    folder = tmp_path_factory.mktemp("system")
    with contextlib.ExitStack() as stack:
        urls = {
            s: stack.enter_context(testing.temporary_database(db_backend, f"e2e_{s}", str(folder)))
            for s in SERVICES
        }
        env = {
            **os.environ,
            "AMQP_URL": amqp_url,
            "NIGHTTALK_VAR_DIR": str(folder / "var"),
            "WEB_CONCURRENCY": "2",
            "LOG_LEVEL": "INFO",
            **{f"{s.upper()}_DATABASE_URL": url for s, url in urls.items()},
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        for service in SERVICES:
            subprocess.run(
                [NIGHTTALK, service, "migrate"],
                env=env,
                check=True,
                capture_output=True,
                timeout=120,
            )
        subprocess.run(
            [NIGHTTALK, "routing", "seed"], env=env, check=True, capture_output=True, timeout=120
        )
        system = System(
            env=env,
            folder=folder,
            ports={s: _free_port() for s in SERVICES},
            amqp_url=amqp_url,
            database_urls=urls,
        )
        try:
            for name in PROCESSES:
                system.start(name)
            for service in SERVICES:
                system.wait_ready(service)
            for name in PROCESSES:
                if name.endswith("-consume"):
                    system.wait_consuming(name)
            yield system
        finally:
            system.stop_all()
