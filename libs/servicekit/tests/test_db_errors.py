"""A database error names the statement, never the values it was given."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import StatementError

from servicekit import db


def test_an_error_does_not_quote_the_statements_values(make_database):
    """A logged traceback shows which statement failed, not the visitor's data bound to it."""
    engine = db.make_engine(make_database("errors"))
    phone = "13905961234"
    try:
        with pytest.raises(StatementError) as raised, engine.connect() as conn:
            conn.execute(
                text("SELECT name FROM no_such_table WHERE phone = :phone"), {"phone": phone}
            )
    finally:
        engine.dispose()
    assert "no_such_table" in str(raised.value)
    assert phone not in str(raised.value)
