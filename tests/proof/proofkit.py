"""What the proof scenarios share: their size and how to start the whole system.

A module of its own, not the directory's conftest.py: every test folder has a
``conftest`` and importing one by that name may find another's.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from eventbus import testing
from servicekit.localsystem import SERVICES, running_system

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose.yaml"
FULL = os.environ.get("NIGHTTALK_PROOF", "short") == "full"


def size(short, full):
    """Return the short figure in the everyday suite and the full one under ``make proof``."""
    return full if FULL else short


@contextlib.contextmanager
def start_system(amqp_url, db_backend, folder: Path, *, extra_env=None):
    """Run the whole system as compose declares it, on fresh databases, logging into folder."""
    with contextlib.ExitStack() as stack:
        urls = {
            s: stack.enter_context(
                testing.temporary_database(db_backend, f"proof_{s}", str(folder))
            )
            for s in SERVICES
        }
        with running_system(
            compose=COMPOSE,
            folder=folder,
            amqp_url=amqp_url,
            database_urls=urls,
            extra_env=extra_env,
        ) as system:
            yield system
