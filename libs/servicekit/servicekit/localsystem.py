"""Run locally the processes deploy/compose.yaml declares: for end-to-end tests and benchmarks.

The set of processes, their commands and the names of their environment variables
come from the compose file; each runs the installed ``nighttalk`` command with local
values (a broker vhost, databases, free ports), so what the tests and benchmarks run
is what compose runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from servicekit import auth

SERVICES = ("intake", "routing", "supervision", "notify")
NIGHTTALK = str(Path(sys.executable).with_name("nighttalk"))


@dataclass(frozen=True)
class ProcessSpec:
    """One process of compose.yaml: its command and its environment (with compose defaults)."""

    name: str
    argv: tuple[str, ...]
    env_defaults: dict[str, str]
    one_shot: bool

    @property
    def env_names(self) -> frozenset[str]:
        return frozenset(self.env_defaults)


_DEFAULTED = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::?-([^${}]*))?\}")


def compose_default(value: str) -> str:
    """Resolve ``${VAR:-default}`` (nested too) to its default, as compose does on an empty env."""
    previous = None
    while previous != value:
        previous, value = value, _DEFAULTED.sub(lambda m: m.group(2) or "", value)
    return value


def compose_processes(compose: Path) -> dict[str, ProcessSpec]:
    """Return the project's processes as a compose file declares them."""
    services = yaml.safe_load(compose.read_text())["services"]
    specs = {}
    for name, service in services.items():
        command = service.get("command") or []
        if not command or command[0] != "nighttalk":
            continue  # rabbitmq, postgres
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        specs[name] = ProcessSpec(
            name=name,
            argv=(NIGHTTALK, *command[1:]),
            env_defaults={k: compose_default(str(v)) for k, v in environment.items()},
            one_shot=service.get("restart", "no") == "no",
        )
    return specs


# Ports handed out by this process: a port is never given twice, even before its server
# has bound it.
_GIVEN: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    """Return the range of local ports the kernel gives outgoing connections."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """Return a local port free now, from outside the kernel's range for outgoing connections.

    A port the kernel picks (bind to 0) lies in that range, and between this check and the
    server's own bind any client's connection (to PostgreSQL, to RabbitMQ) may take it as its
    local end: gunicorn then fails with "Address already in use" (seen in CI).
    """
    low, _high = _ephemeral_range()
    candidates = list(range(10_000, low)) if low > 11_000 else list(range(low, 65_536))
    for port in random.sample(candidates, k=min(500, len(candidates))):
        if port in _GIVEN:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _GIVEN.add(port)
        return port
    raise RuntimeError("no free local port found")


class SmsGateway:
    """Stand in for the city's HTTP SMS gateway (notify's ``NIGHTTALK_SMS_URL``) on a free port.

    Records one message per Idempotency-Key; for the proof suite and the benchmark.
    """

    def __init__(self) -> None:
        self.requests = 0
        self.messages: set[str] = set()  # the Idempotency-Keys (notification ids) taken
        lock = threading.Lock()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            # Keeps the connection open between messages, as a provider's gateway does.
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                key = self.headers.get("Idempotency-Key")
                ok = bool(key and body.get("to") and body.get("text"))
                with lock:
                    gateway.requests += 1
                    if ok:
                        gateway.messages.add(key)
                try:
                    self.send_response(200 if ok else 400)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the delivery worker was killed mid-request

            def log_message(self, *args):
                pass  # the requests carry phone numbers: not in any log

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # Closing must not wait for a client's idle kept-alive connection to end.
        self.server.block_on_close = False
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sms"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class System:
    """The running processes of the four services and how to reach them."""

    env: dict[str, str]
    specs: dict[str, ProcessSpec]
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

    def environment(self, spec: ProcessSpec, name: str) -> dict[str, str]:
        """Give a process exactly the variables compose gives it, with local values."""
        local = dict(self.env)
        service = spec.name.split("-")[0]
        local["PORT"] = str(self.ports[service])
        metrics = self.folder / "metrics" / name
        metrics.mkdir(parents=True, exist_ok=True)
        local["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
        # Addresses are local; a variable compose gives without one here keeps its compose
        # default (a port, a timeout, an empty gateway URL), unless it names a compose host.
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
        env = {k: os.environ[k] for k in keep if k in os.environ}
        env["NIGHTTALK_VAR_DIR"] = self.env["NIGHTTALK_VAR_DIR"]
        for name, default in spec.env_defaults.items():
            if name in local:
                env[name] = local[name]
            else:
                assert not re.search(r"@(postgres|rabbitmq)\b|//(postgres|rabbitmq)\b", default), (
                    f"compose gives {spec.name} {name} pointing at a compose host: "
                    "add a local value for it"
                )
                env[name] = default
        return env

    def run_one_shot(self, name: str) -> None:
        """Run a one-shot job (a migration, the seed) to completion."""
        spec = self.specs[name]
        result = subprocess.run(
            spec.argv, env=self.environment(spec, name), capture_output=True, timeout=180
        )
        assert result.returncode == 0, f"{name} failed: {result.stderr.decode()[-2000:]}"

    def start(self, name: str) -> subprocess.Popen:
        """Start (or restart) a process by its compose name; ``-2`` starts a second replica."""
        base = name if name in self.specs else name.rsplit("-", 1)[0]  # routing-consumer-2
        spec = self.specs[base]
        argv = list(spec.argv)
        if argv[-1] == "api":
            argv += ["--port", str(self.ports[spec.name.split("-")[0]]), "--host", "127.0.0.1"]
        log = open(self.log_path(name), "ab")  # noqa: SIM115 - owned by the process
        proc = subprocess.Popen(
            argv,
            env=self.environment(spec, name),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes[name] = proc
        return proc

    def long_running(self) -> list[str]:
        return [name for name, spec in self.specs.items() if not spec.one_shot]

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
        """Wait until a service's API answers /readyz with 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(urllib.error.URLError, OSError),
                urllib.request.urlopen(self.url(service, "/readyz"), timeout=2) as reply,
            ):
                if reply.status == 200:
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


@contextlib.contextmanager
def running_system(
    *,
    compose: Path,
    folder: Path,
    amqp_url: str,
    database_urls: dict[str, str],
    extra_env: dict[str, str] | None = None,
) -> Iterator[System]:
    """Migrate, seed and start every long-running process compose declares; stop them after."""
    env = {
        "AMQP_URL": amqp_url,
        "NIGHTTALK_VAR_DIR": str(folder / "var"),
        "NIGHTTALK_JWT_SECRET": auth.secret(),  # the secret this process mints tokens with
        "NIGHTTALK_PII_KEY": "local-system-pii-key",
        "NIGHTTALK_TIMEZONE": "Asia/Shanghai",
        "ROUTING_DEFAULT_UNIT": "city-gov-office",
        "WEB_CONCURRENCY": "2",
        "LOG_LEVEL": "INFO",
        **{f"{s.upper()}_DATABASE_URL": url for s, url in database_urls.items()},
        **(extra_env or {}),
    }
    system = System(
        env=env,
        specs=compose_processes(compose),
        folder=folder,
        ports={s: free_port() for s in SERVICES},
        amqp_url=amqp_url,
        database_urls=database_urls,
    )
    # compose's broker loads its queues and bindings at boot (deploy/rabbitmq); here they are
    # declared first the same way, so the seed's events reach every consumer started after.
    declared = subprocess.run(
        [NIGHTTALK, "broker", "declare"],
        env={**{k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}, **env},
        capture_output=True,
        timeout=120,
    )
    assert declared.returncode == 0, f"broker declare failed: {declared.stderr.decode()[-2000:]}"
    one_shots = [n for n, spec in system.specs.items() if spec.one_shot]
    # Migrations first, then what depends on them (the seed), as compose orders them.
    for name in sorted(one_shots, key=lambda n: not n.endswith("-migrate")):
        system.run_one_shot(name)
    try:
        for name in system.long_running():
            system.start(name)
        for service in SERVICES:
            system.wait_ready(service)
        for name in system.long_running():
            if name.endswith("-consumer"):
                system.wait_consuming(name)
        yield system
    finally:
        system.stop_all()
