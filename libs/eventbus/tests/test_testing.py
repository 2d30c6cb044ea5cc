"""The test helpers' own logic: waiting for what another thread or process does, counting reads."""

from __future__ import annotations

import itertools
import threading

import pytest
import sqlalchemy

from eventbus import testing


def test_eventually_returns_the_first_truthy_answer():
    answers = iter([0, [], None, "routed", "later"])
    assert testing.eventually(lambda: next(answers), interval=0) == "routed"


def test_eventually_fails_at_the_deadline_naming_what_it_waited_for():
    asked = itertools.count(1)
    with pytest.raises(
        AssertionError, match=r"not within 0\.05 s: the case routed \(last answer 0\)"
    ):
        testing.eventually(
            lambda: next(asked) and 0, "the case routed", timeout=0.05, interval=0.01
        )
    assert next(asked) > 2  # asked again until the deadline, not once


def test_a_consumer_that_cannot_start_fails_the_test_and_is_stopped():
    """Nothing listens on port 1: the consumer keeps trying to connect, never ready."""
    never_ready = testing.running_consumer(
        timeout=0.5,
        service="tests",
        handlers={},
        unit_of_work=lambda: None,
        url="amqp://guest:guest@127.0.0.1:1/%2F",
    )
    with pytest.raises(AssertionError, match="the consumer did not start"), never_ready:
        pass
    assert not [t for t in threading.enumerate() if t.name == "tests-consumer"]


JOINED = "SELECT a.code FROM units_archive a JOIN units u ON 1=1"


def test_reads_of_collects_the_selects_of_one_table_only(tmp_path):
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'reads.db'}")
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("CREATE TABLE units (code TEXT)"))
        conn.execute(sqlalchemy.text("CREATE TABLE units_archive (code TEXT)"))
    with testing.reads_of(engine, "units") as reads, engine.begin() as conn:
        conn.execute(sqlalchemy.text("INSERT INTO units VALUES ('a')"))
        conn.execute(sqlalchemy.text("SELECT code FROM units"))
        conn.execute(sqlalchemy.text("SELECT code FROM units_archive"))
        conn.execute(sqlalchemy.text(JOINED))
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text("SELECT code FROM units"))  # after the block: not noted
    assert reads == ["SELECT code FROM units", JOINED]
    engine.dispose()


def test_transaction_endings_says_how_each_transaction_ended_in_the_block(tmp_path):
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'endings.db'}")
    with testing.transaction_endings(engine) as endings:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
            conn.rollback()
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("SELECT 1"))  # after the block: not noted
    assert endings == ["commit", "rollback"]
    engine.dispose()
