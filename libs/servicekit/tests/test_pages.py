"""A list's total is counted up to a cap, on the run's database (SQLite or PostgreSQL)."""

from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert, select
from sqlalchemy.orm import Session

from servicekit.pages import count_up_to


def test_a_total_is_exact_up_to_the_cap_and_says_when_it_is_not(make_database):
    engine = create_engine(make_database("pages"))
    rows = Table("rows", MetaData(), Column("n", Integer, primary_key=True))
    rows.metadata.create_all(engine)
    with Session(engine) as session:
        session.execute(insert(rows), [{"n": n} for n in range(5)])
        everything = select(rows.c.n).order_by(rows.c.n)
        assert count_up_to(session, everything, cap=5) == (5, True)
        assert count_up_to(session, everything, cap=3) == (3, False)
        assert count_up_to(session, everything.where(rows.c.n < 2), cap=3) == (2, True)
    engine.dispose()
