"""A read's session ends in COMMIT, so PostgreSQL keeps the statements psycopg prepared."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, select, text

from servicekit.runtime import make_runtime

NO_BROKER = "amqp://guest:guest@127.0.0.1:1/%2F"  # nothing here publishes


@pytest.fixture
def runtime(make_database):
    metadata = MetaData()
    Table("outbox", metadata, Column("id", Integer, primary_key=True))
    Table("inbox", metadata, Column("event_id", String(64), primary_key=True))
    notes = Table(
        "notes", metadata, Column("id", Integer, primary_key=True), Column("body", String)
    )
    runtime = make_runtime("readtest", metadata, make_database("reading"), NO_BROKER)
    metadata.create_all(runtime.engine)
    runtime.notes = notes
    yield runtime
    runtime.close()


def _prepared(runtime) -> list[str]:
    # The same pooled connection: each block above returned it before the next began.
    with runtime.engine.connect() as conn:
        return conn.execute(text("SELECT statement FROM pg_prepared_statements")).scalars().all()


def test_a_read_asked_again_and_again_is_prepared_once(runtime, db_backend):
    if db_backend == "sqlite":
        pytest.skip("SQLite keeps no prepared statements across transactions")
    query = select(runtime.notes.c.body).where(runtime.notes.c.id == 1)

    for _ in range(6):  # psycopg prepares a statement at its fifth run on a connection
        with runtime.sessions() as session:
            session.execute(query).all()
    # Each of those ended in ROLLBACK, and psycopg forgets what it prepared at each one.
    assert not [s for s in _prepared(runtime) if "notes" in s]

    for _ in range(6):
        with runtime.reading() as session:
            session.execute(query).all()
    assert [s for s in _prepared(runtime) if "notes" in s]


def test_a_read_that_fails_commits_nothing(runtime):
    with pytest.raises(RuntimeError), runtime.reading() as session:
        session.execute(runtime.notes.insert().values(id=1, body="half done"))
        raise RuntimeError("the request failed")

    with runtime.reading() as session:
        session.execute(runtime.notes.insert().values(id=2, body="whole"))
    with runtime.sessions() as session:
        assert session.execute(select(runtime.notes.c.body)).scalars().all() == ["whole"]
