"""pytest fixtures for tests against the real broker and databases.

- ``amqp_url``: a private RabbitMQ vhost for the session.
- ``db_backend``: ``sqlite`` or ``postgresql``, from ``NIGHTTALK_TEST_DB`` (default sqlite).
- ``make_database``: a factory of fresh empty databases on that backend.
"""

from __future__ import annotations

import contextlib
import os

import pytest

from eventbus import testing


@pytest.fixture(scope="session")
def amqp_url():
    """Yield the URL of a private vhost on the real RabbitMQ."""
    with testing.temporary_vhost() as url:
        yield url


@pytest.fixture(scope="session")
def db_backend() -> str:
    """Return which database the suite runs on."""
    backend = os.environ.get("NIGHTTALK_TEST_DB", "sqlite")
    if backend not in ("sqlite", "postgresql"):
        raise pytest.UsageError(f"NIGHTTALK_TEST_DB must be sqlite or postgresql, not {backend!r}")
    return backend


@pytest.fixture
def make_database(db_backend, tmp_path):
    """Return a function that creates a fresh database and returns its URL."""
    with contextlib.ExitStack() as stack:

        def make(name: str) -> str:
            return stack.enter_context(testing.temporary_database(db_backend, name, str(tmp_path)))

        yield make
