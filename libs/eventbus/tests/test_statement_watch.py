"""A database call unanswered past the bound has its link broken; time between calls is free.

On the real PostgreSQL (SQLite is a local file with no link to break): a statement that
waits on the server (pg_sleep) stands for one that waits on a dead link, since from the
client's side both are a socket that answers nothing.
"""

from __future__ import annotations

import contextlib
import threading
import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from eventbus import statement_watch
from eventbus.statement_watch import StatementWatch


@pytest.fixture
def engine(db_backend, make_database):
    if db_backend == "sqlite":
        pytest.skip("SQLite is a local file: no link to break; this runs on PostgreSQL")
    engine = create_engine(make_database("watch"), pool_pre_ping=True)
    yield engine
    engine.dispose()


@contextlib.contextmanager
def watched(engine, bound: float):
    """Watch an engine's calls as the consumer's connection thread does; yield what broke."""
    watch, done, broken = StatementWatch(engine, bound=bound), threading.Event(), []

    def look() -> None:
        while not done.wait(0.1):
            broken.extend(watch.break_overdue())

    watcher = threading.Thread(target=look)
    watcher.start()
    try:
        yield broken
    finally:
        done.set()
        watcher.join()


def test_a_call_unanswered_past_the_bound_fails_soon_and_the_engine_goes_on(engine, monkeypatch):
    # The cancel request lost as on a dead route: the link itself is broken.
    monkeypatch.setattr(statement_watch, "_ask_the_server_to_cancel", lambda connection: None)
    with watched(engine, 0.5) as broken:
        began = time.monotonic()
        with pytest.raises(OperationalError), engine.connect() as conn:
            conn.execute(text("SELECT pg_sleep(30)"))
        waited = time.monotonic() - began
        # The broken connection was discarded: the next call gets a fresh one.
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
    assert waited < 5, waited
    assert len(broken) == 1 and broken[0] > 0.5


def _backends_running(engine, query: str) -> int:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = 'active' AND query = :query"
            ),
            {"query": query},
        ).scalar()


def test_a_call_unanswered_past_the_bound_is_cancelled_on_the_server(engine):
    """Not only the client's link: the server's backend stops too, and holds nothing."""
    slow = "SELECT pg_sleep(30)"
    with watched(engine, 0.5) as broken:
        with pytest.raises(OperationalError) as failed, engine.connect() as conn:
            conn.execute(text(slow))
        assert _backends_running(engine, slow) == 0
    assert failed.value.orig.sqlstate == "57014"  # query_canceled: the link still good
    assert broken == []


def test_a_lock_wait_ends_on_the_server_before_the_bound(engine):
    """lock_timeout, below the bound: a statement waiting on a row lock fails by itself."""
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n integer)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
    with watched(engine, 4.0) as broken:
        engine.dispose()  # links made from now on get the watch's lock_timeout
        with engine.connect() as holder, holder.begin():
            holder.execute(text("SELECT * FROM t FOR UPDATE"))
            with pytest.raises(OperationalError) as failed, engine.connect() as conn:
                conn.execute(text("UPDATE t SET n = 2"))
    assert failed.value.orig.sqlstate == "55P03"  # lock_not_available
    assert broken == []  # ended by the server, before the watch had to step in


def test_time_between_calls_is_not_a_call(engine):
    # A handler may run long (the long-handler proof); only a call waiting counts.
    with watched(engine, 0.3) as broken:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (n integer)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
            time.sleep(1.0)
            conn.execute(text("INSERT INTO t VALUES (2)"))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 2
    assert broken == []
