"""The benchmark's CPU reading from /proc: a process's own time, and its ended children's."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.cpu import cpu_seconds

BURN = """
import time
start = time.process_time()
while time.process_time() - start < 0.3:
    pass
"""


def test_a_child_that_ended_is_counted_in_the_process_that_waited_for_it():
    """As a PostgreSQL backend whose connection closed is, in the postmaster."""
    before = cpu_seconds(os.getpid())
    subprocess.run([sys.executable, "-c", BURN], check=True)  # waited for: reaped

    assert cpu_seconds(os.getpid()) - before >= 0.25


def test_a_process_that_is_gone_reads_zero():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()

    assert cpu_seconds(child.pid) == 0.0
