"""Open-loop load: send at a fixed rate whatever the server does, measure from the schedule.

Latency is measured from the instant a request was *scheduled*, not when a client thread
got round to it, so a slow server cannot hide its queueing (coordinated omission).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests


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
        session = requests.Session()
        while (shot := todo.get()) is not None:
            try:
                r = session.post(url, json=make_body(shot.n), headers=headers, timeout=30)
                shot.status = r.status_code
                shot.body = r.json() if r.status_code == 201 else None
            except requests.RequestException:
                shot.status = 0
            shot.done = time.monotonic()

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
        session = requests.Session()
        n = i * 1_000_000
        while time.monotonic() < stop:
            r = session.post(url, json=make_body(n), headers=headers, timeout=30)
            n += 1
            if r.status_code in (200, 201):
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
