"""Open-loop load: send at a fixed rate whatever the server does, measure from the schedule.

Latency is measured from the instant a request was *scheduled*, not when a client thread
got round to it, so a slow server cannot hide its queueing (coordinated omission).
"""

from __future__ import annotations

import http.client
import json
import queue
import select
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field


class JsonPoster:
    """POST JSON over one kept-alive connection; reconnect after a failure.

    The standard library's client, not requests: on the benchmark's two cores the load
    generator shares the CPU with what it measures, and requests spent 1.8–1.9 ms of CPU
    per POST here, more than the bare Flask app it times (the HTTP floor), against 0.3–0.4
    ms for http.client (measured side by side on the floor app).
    """

    def __init__(self, url: str, headers: dict[str, str], timeout: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port, self.path = parts.hostname, parts.port, parts.path or "/"
        self.headers = {"Content-Type": "application/json", **headers}
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def post(self, body: dict) -> tuple[int, bytes]:
        """Return (status, response body); status 0 if the request failed on the way."""
        if self.conn is not None and _closed_by_peer(self.conn):
            # The server closed the idle connection (gunicorn's keep-alive is 5 s):
            # reconnect before sending, as urllib3 does, rather than fail the POST.
            self.conn.close()
            self.conn = None
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self.conn.request("POST", self.path, json.dumps(body).encode(), self.headers)
            reply = self.conn.getresponse()
            return reply.status, reply.read()
        except (OSError, http.client.HTTPException):
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            return 0, b""


def _closed_by_peer(conn: http.client.HTTPConnection) -> bool:
    # An idle connection with something to read has only the peer's close (EOF) on it.
    # poll, not select: select cannot watch a descriptor numbered above 1023.
    if conn.sock is None:
        return True
    idle = select.poll()
    idle.register(conn.sock, select.POLLIN)
    return bool(idle.poll(0))


@dataclass
class Shot:
    n: int
    scheduled: float  # time.monotonic() the request was due
    done: float | None = None
    status: int | None = None
    body: dict | None = None


@dataclass
class Run:
    rate: float
    seconds: float
    shots: list[Shot] = field(default_factory=list)


def open_loop(
    url: str,
    make_body: Callable[[int], dict],
    headers: dict[str, str],
    *,
    rate: float,
    seconds: float,
    clients: int = 64,
) -> Run:
    """Post ``make_body(n)`` to ``url`` at ``rate`` per second for ``seconds``."""
    run = Run(rate, seconds)
    todo: queue.Queue[Shot | None] = queue.Queue()

    def client():
        poster = JsonPoster(url, headers)
        while (shot := todo.get()) is not None:
            shot.status, body = poster.post(make_body(shot.n))
            shot.done = time.monotonic()
            shot.body = json.loads(body) if shot.status == 201 else None

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    start = time.monotonic()
    total = int(rate * seconds)
    for n in range(total):
        due = start + n / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        shot = Shot(n, due)
        run.shots.append(shot)
        todo.put(shot)
    for _ in threads:
        todo.put(None)
    for t in threads:
        t.join(60)
    return run


def closed_loop_throughput(
    url: str,
    make_body: Callable[[int], dict],
    headers: dict[str, str],
    *,
    seconds: float,
    clients: int = 16,
) -> float:
    """Return requests per second with ``clients`` sending back to back (a capacity figure)."""
    count = [0] * clients
    stop = time.monotonic() + seconds

    def client(i):
        poster = JsonPoster(url, headers)
        n = i * 1_000_000
        while time.monotonic() < stop:
            status, _body = poster.post(make_body(n))
            n += 1
            if status in (200, 201):
                count[i] += 1

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    return sum(count) / (time.monotonic() - started)


def percentile(values: list[float], p: float) -> float | None:
    """Return the p-th percentile (nearest rank) of values, or None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[index]
