"""A RabbitMQ node of the test's own, which a scenario may stop and start again.

The machine's broker is shared with every other test session, so a scenario that
restarts "the broker" runs the system on a node of its own: the same rabbitmq-server,
with its own node name, ports, data directory, configuration and Erlang cookie.
Stopping it and starting it again on the same data directory is what a production
restart does: quorum queues and their messages come back from disk.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pika

from eventbus.connection import connect
from servicekit.localsystem import free_port

# Debian's /usr/sbin wrapper drops to the rabbitmq user and sends the output to
# /var/log; the scripts it wraps run the node as whoever calls them, in our folder.
_DEBIAN_SCRIPTS = Path("/usr/lib/rabbitmq/bin")


def _script(name: str) -> str:
    if (_DEBIAN_SCRIPTS / name).exists():
        return str(_DEBIAN_SCRIPTS / name)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed (Debian: apt-get install rabbitmq-server)")
    return found


@dataclass
class PrivateBroker:
    """One RabbitMQ node living in ``folder``; ``stop`` and ``start`` keep its data."""

    folder: Path
    node: str = field(default_factory=lambda: f"nighttalk-proof-{secrets.token_hex(4)}@localhost")
    port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def prepare(self) -> None:
        """Write the node's configuration, empty plugin list and cookie into its folder."""
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
        )
        # No plugins: the machine's node already holds the management and metrics ports.
        (self.folder / "enabled_plugins").write_text("[].\n")
        # An empty env file, so the machine's rabbitmq-env.conf (its NODENAME) is not read.
        (self.folder / "rabbitmq-env.conf").write_text("")
        cookie = self.folder / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16))
        cookie.chmod(0o400)  # Erlang refuses a cookie others can read

    def env(self) -> dict[str, str]:
        """Return the environment of the node and of rabbitmqctl talking to it."""
        folder = str(self.folder)
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "HOME": folder,  # where both the node and rabbitmqctl read the cookie
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": f"{folder}/mnesia",
            "RABBITMQ_LOG_BASE": f"{folder}/log",
            "RABBITMQ_CONFIG_FILE": f"{folder}/rabbitmq.conf",
            "RABBITMQ_ADVANCED_CONFIG_FILE": f"{folder}/advanced.config",
            "RABBITMQ_ENABLED_PLUGINS_FILE": f"{folder}/enabled_plugins",
            "RABBITMQ_CONF_ENV_FILE": f"{folder}/rabbitmq-env.conf",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run rabbitmqctl against this node."""
        return subprocess.run(
            [_script("rabbitmqctl"), "-q", "-n", self.node, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, timeout: float = 120) -> None:
        """Start the node (on the data it has) and return once it accepts connections."""
        assert self.process is None or self.process.poll() is not None, "already running"
        log = open(self.folder / "server.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            [_script("rabbitmq-server")],
            env=self.env(),
            cwd=self.folder,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        # The node opens its AMQP listener last, once booted. Ask it over AMQP rather than
        # with rabbitmqctl: each rabbitmqctl boots a VM of its own, seconds of CPU.
        while not self._answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"RabbitMQ node exited; see {self.folder / 'server.log'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"RabbitMQ node not up; see {self.folder / 'log'}")
            time.sleep(0.1)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                pass
            connect(self.amqp_url).close()
        except (OSError, pika.exceptions.AMQPError):
            return False
        return True

    def stop(self, timeout: float = 60) -> None:
        """Stop the node as an operator does (``rabbitmqctl stop``); its data stays."""
        if self.process is None or self.process.poll() is not None:
            return
        result = self.ctl("stop", timeout=timeout)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"RabbitMQ node did not stop: {result.stderr}") from None

    def kill(self) -> None:
        """Kill the node's process group (the Erlang VM and its helpers)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


@contextlib.contextmanager
def private_broker(folder: Path) -> Iterator[PrivateBroker]:
    """Run a RabbitMQ node of our own in ``folder``; stop it and delete its data after."""
    broker = PrivateBroker(folder)
    broker.prepare()
    try:
        broker.start()
        yield broker
    finally:
        try:
            broker.stop()
        finally:
            broker.kill()
            # The queues hold the visits' events: nothing of them stays on disk.
            shutil.rmtree(folder / "mnesia", ignore_errors=True)
