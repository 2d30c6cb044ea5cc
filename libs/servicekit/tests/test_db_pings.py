"""A pooled PostgreSQL connection is tested before use only after it sat idle."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from servicekit import db


@pytest.fixture
def url(make_database, db_backend):
    if db_backend == "sqlite":
        pytest.skip("SQLite opens a local file: no connection to drop, none pinged")
    return make_database("pings")


@pytest.fixture
def engine(url):
    engine = db.make_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def pings(engine, monkeypatch):
    """Count the pings the engine sends."""
    sent: list[int] = []
    real = engine.dialect.do_ping

    def counted(dbapi_connection):
        sent.append(1)
        return real(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    return sent


def _backend_pid(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


def test_a_connection_used_a_moment_ago_is_handed_out_without_a_ping(engine, pings):
    first = _backend_pid(engine)
    assert [_backend_pid(engine) for _ in range(5)] == [first] * 5
    assert pings == []


def test_an_idle_connection_the_database_dropped_is_replaced_before_use(
    engine, url, pings, monkeypatch
):
    first = _backend_pid(engine)
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as admin:  # a restart, an idle timeout...
        admin.execute("SELECT pg_terminate_backend(%s)", (first,))
    monkeypatch.setattr(db, "PING_AFTER_IDLE", 0.0)  # the connection has sat idle long enough

    # Without the ping this would fail: the pooled connection's backend is gone.
    assert _backend_pid(engine) != first
    assert len(pings) == 1
