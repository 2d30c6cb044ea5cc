"""Fixtures of supervision's tests: a migrated database of its own and a runtime on it."""

from __future__ import annotations

import pytest
from supervision_samples import NO_BROKER, consume, unit_changed

from servicekit import migrations
from servicekit.runtime import make_runtime
from supervision import models
from supervision.app import create_app


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


@pytest.fixture
def app(database_url):
    """Yield supervision's app on the test database, its events left in the outbox."""
    app = create_app({"DATABASE_URL": database_url, "AMQP_URL": NO_BROKER, "TESTING": True})
    yield app
    app.extensions["runtime"].close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def rt(app):
    """The app's own runtime: events applied with it land where the API reads."""
    return app.extensions["runtime"]


@pytest.fixture
def directory(rt):
    """city ← lw (a county) ← lw-buwen, lw-chaoyang (townships); xc elsewhere."""
    consume(rt, unit_changed("city", parent=None, leader="市长", level="city"))
    consume(rt, unit_changed("lw", parent="city", leader="县长", level="county"))
    consume(rt, unit_changed("lw-buwen", parent="lw", leader="步文书记"))
    consume(rt, unit_changed("lw-chaoyang", parent="lw", leader="朝阳书记"))
    consume(rt, unit_changed("xc", parent="city", leader="芗城区长", level="county"))
