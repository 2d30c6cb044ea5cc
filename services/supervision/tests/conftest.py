"""Fixtures of supervision's tests: a migrated database of its own and a runtime on it."""

from __future__ import annotations

import pytest

from servicekit import migrations
from servicekit.runtime import make_runtime
from supervision import models


@pytest.fixture
def database_url(make_database) -> str:
    """Return the URL of a fresh supervision database brought to head by its migrations."""
    url = make_database("supervision")
    migrations.upgrade("supervision", "supervision", url)
    return url


@pytest.fixture
def runtime(database_url):
    """Yield supervision's runtime on the test database."""
    runtime = make_runtime("supervision", models.metadata, database_url)
    yield runtime
    runtime.close()
