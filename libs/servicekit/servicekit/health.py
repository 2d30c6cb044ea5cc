"""Probes: ``/healthz`` (the process answers), ``/readyz`` (database and broker reachable)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from flask import Blueprint, current_app, jsonify

from eventbus.connection import connect
from servicekit import metrics
from servicekit.db import Probe

log = logging.getLogger(__name__)
blp = Blueprint("probes", __name__)

# /readyz answers within this many seconds whatever the database and the broker do (compose's
# healthcheck gives it 5): a check without an answer by then is "unavailable".
READY_TIMEOUT = 3.0
# A result this many seconds old answers further probes without new connections: /readyz
# needs no token, and each check opens a connection to the database and one to the broker.
READY_REUSE = 1.0


@blp.get("/healthz")
def healthz():
    """Answer while the process is alive."""
    return jsonify(status="ok")


@blp.get("/readyz")
def readyz():
    """Answer 200 when the database and the broker both answer, else 503 naming which did not.

    Both are checked at once, each on a connection of its own, and the answer comes within
    ``READY_TIMEOUT`` seconds: a probe never waits on a database gone silent.
    """
    checks = _readiness(current_app).checks()
    ready = all(v == "ok" for v in checks.values())
    return jsonify(status="ready" if ready else "not ready", checks=checks), 200 if ready else 503


@blp.get("/metrics")
def metrics_view():
    """Expose Prometheus metrics of every worker of this service."""
    return metrics.render(
        current_app.extensions["runtime"].outbox,
        current_app.extensions.get("metrics_collectors", ()),
    )


_made = threading.Lock()


def _readiness(app) -> Readiness:
    with _made:
        if "readiness" not in app.extensions:
            app.extensions["readiness"] = Readiness(
                app.extensions["runtime"].engine, app.config.get("AMQP_URL")
            )
        return app.extensions["readiness"]


class _Check:
    """One check running in a thread of its own; ``result`` is "ok" or why not."""

    def __init__(self, run: Callable[[], None], stop: Callable[[], None] | None = None):
        self.result: str | None = None
        self._run, self._stop = run, stop
        self._thread = threading.Thread(target=self._main, name="readiness", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        try:
            self._run()
            self.result = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            self.result = f"unavailable: {exc.__class__.__name__}"

    def outcome(self, deadline: float) -> str:
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self.result is not None:
            return self.result
        if self._stop is not None:
            self._stop()  # the thread ends soon; nothing waits for it
        return f"unavailable: no answer within {READY_TIMEOUT:g} s"


class Readiness:
    """Check a service's database and broker, once at a time in a process.

    Probes that come while a check runs wait for its outcome, and one a moment old
    (``READY_REUSE``) answers them too, so a stream of probes opens no stream of
    connections; a stuck check is stopped at its deadline, and the next probe starts anew.
    """

    def __init__(self, engine, amqp_url: str | None):
        self.engine, self.amqp_url = engine, amqp_url
        self._lock = threading.Lock()
        self._running: tuple[float, threading.Event, dict] | None = None
        self._last: tuple[float, dict] | None = None

    def checks(self) -> dict[str, str]:
        """Return each dependency's state: "ok" or "unavailable: <why>"."""
        with self._lock:
            now = time.monotonic()
            if self._last is not None and now - self._last[0] < READY_REUSE:
                return self._last[1]
            leader = self._running is None or self._running[0] <= now
            if leader:
                self._running = (now + READY_TIMEOUT, threading.Event(), {})
            deadline, done, shared = self._running
        if not leader:
            done.wait(max(0.0, deadline - time.monotonic()) + 1.0)
            return dict(shared) or {"readiness": "unavailable: no answer in time"}
        checks = self._check(deadline)
        with self._lock:
            shared.update(checks)
            self._last = (time.monotonic(), checks)
            if self._running is not None and self._running[1] is done:
                self._running = None
        done.set()
        return checks

    def _check(self, deadline: float) -> dict[str, str]:
        probe = Probe(self.engine, READY_TIMEOUT)
        database = _Check(probe.run, probe.stop)
        broker = _Check(lambda: connect(self.amqp_url, socket_timeout=2.0).close())
        return {"database": database.outcome(deadline), "broker": broker.outcome(deadline)}
