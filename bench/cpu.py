"""CPU time spent per visit by each process of the system, PostgreSQL and RabbitMQ.

On a machine where everything shares two cores, throughput is bounded by the CPU one
visit costs in all of them together; this says where that time goes. Read from
/proc (Linux): user + system time of each process and its children still running
(gunicorn's workers), and of every ``postgres`` and ``beam.smp`` process; each with the
time of its children that have ended (a PostgreSQL backend whose connection closed is
counted in the postmaster that reaped it, not lost with it).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
SHARED = {"postgresql": "postgres", "rabbitmq": "beam.smp"}


def cpu_seconds(pid: int) -> float:
    """Return the user + system CPU seconds a process and its ended children have used so
    far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # gone since it was listed
    # utime + stime, and cutime + cstime: the children it has waited for. A child still
    # running is not in them (it is listed and read on its own), so nothing counts twice.
    return sum(int(f) for f in fields[11:15]) / TICKS


def _tree(pid: int) -> list[int]:
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    pids = [pid]
    for child in children.stdout.split():
        pids += _tree(int(child))
    return pids


def _named(name: str) -> list[int]:
    found = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


def shared_seconds() -> dict[str, float]:
    """Return the CPU seconds PostgreSQL's and RabbitMQ's processes have used so far."""
    return {label: sum(cpu_seconds(p) for p in _named(name)) for label, name in SHARED.items()}


def snapshot(system) -> tuple[float, dict[str, float]]:
    """Return (monotonic time, CPU seconds used so far by each process)."""
    used = {
        name: sum(cpu_seconds(p) for p in _tree(proc.pid))
        for name, proc in system.processes.items()
    }
    used.update(shared_seconds())
    return time.monotonic(), used


def idle_rates(system, seconds: float) -> dict[str, float]:
    """Return each process's CPU seconds per second while nothing is offered."""
    t0, before = snapshot(system)
    time.sleep(seconds)
    t1, after = snapshot(system)
    return {k: max(0.0, (after[k] - before.get(k, 0.0)) / (t1 - t0)) for k in after}


def per_visit_ms(before, after, idle: dict[str, float], visits: int) -> dict[str, float]:
    """Return the CPU milliseconds each process spent per visit between two snapshots."""
    (t0, used0), (t1, used1) = before, after
    if not visits:
        return {}
    return {
        name: round(
            max(0.0, used1[name] - used0.get(name, 0.0) - idle.get(name, 0.0) * (t1 - t0))
            * 1000
            / visits,
            2,
        )
        for name in used1
    }
