"""``one_of``: a set of values as one SQL condition, one array parameter on PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, MetaData, String, Table, event, select
from sqlalchemy.orm import Session

from servicekit import db

metadata = MetaData()
units = Table("units", metadata, Column("code", String(64), primary_key=True))


@pytest.fixture
def engine(make_database):
    engine = db.make_engine(make_database("one_of"))
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(units.insert(), [{"code": c} for c in ("lw", "lw-buwen", "xc", "city")])
    yield engine
    engine.dispose()


@pytest.mark.parametrize(
    ("wanted", "found"),
    [({"lw", "xc"}, ["lw", "xc"]), ({"lw-buwen"}, ["lw-buwen"]), ({"nowhere"}, []), (set(), [])],
)
def test_the_rows_holding_one_of_the_values(engine, wanted, found):
    with Session(engine) as session:
        condition = db.one_of(session, units.c.code, wanted)
        rows = session.scalars(select(units.c.code).where(condition).order_by(units.c.code))
        assert rows.all() == found


def test_on_postgresql_any_number_of_values_is_one_statement(engine, db_backend):
    if db_backend == "sqlite":
        pytest.skip("SQLite has no arrays: an IN list, as long as the values")
    asked: list[str] = []

    def on_statement(_conn, _cursor, statement, *_):
        asked.append(statement)

    event.listen(engine, "before_cursor_execute", on_statement)
    with Session(engine) as session:
        for wanted in ({"lw"}, {"lw", "lw-buwen", "xc"}):
            session.scalars(select(units.c.code).where(db.one_of(session, units.c.code, wanted)))
    assert len(asked) == 2
    assert asked[0] == asked[1]
    assert "ANY" in asked[0]
