"""Start the real system for end-to-end tests: the processes compose declares, run locally."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from eventbus import testing
from servicekit.localsystem import SERVICES, running_system

COMPOSE = Path(__file__).resolve().parents[2] / "deploy" / "compose.yaml"


@pytest.fixture(scope="session")
def system(amqp_url, db_backend, tmp_path_factory):
    """Yield the whole system running as compose declares it; stop it afterwards."""
    folder = tmp_path_factory.mktemp("system")
    with contextlib.ExitStack() as stack:
        urls = {
            s: stack.enter_context(testing.temporary_database(db_backend, f"e2e_{s}", str(folder)))
            for s in SERVICES
        }
        with running_system(
            compose=COMPOSE, folder=folder, amqp_url=amqp_url, database_urls=urls
        ) as system:
            yield system
