"""Which database errors are none of the event's doing, told by their SQLSTATE."""

from __future__ import annotations

import psycopg
import psycopg.errors as pg
import pytest
from sqlalchemy.exc import DBAPIError

from eventbus.consumer import database_trouble


def wrapped(error: Exception) -> DBAPIError:
    """Return the error as SQLAlchemy raises it from psycopg."""
    return DBAPIError.instance("INSERT ...", {}, error, psycopg.Error)


@pytest.mark.parametrize(
    ("error", "trouble"),
    [
        (pg.ReadOnlySqlTransaction(), "away"),  # 25006, an InternalError
        (pg.AdminShutdown(), "away"),  # 57P01
        (pg.CannotConnectNow(), "away"),  # 57P03
        (pg.ConnectionFailure(), "away"),  # 08006
        (pg.TooManyConnections(), "away"),  # 53300
        (pg.DiskFull(), "away"),  # 53100
        (psycopg.OperationalError("server closed the connection unexpectedly"), "away"),
        (pg.SerializationFailure(), "contended"),  # 40001
        (pg.DeadlockDetected(), "contended"),  # 40P01
        (pg.LockNotAvailable(), "contended"),  # 55P03
        (pg.QueryCanceled(), "contended"),  # 57014
        (pg.UndefinedTable(), None),  # 42P01: a bug, not the database
        (pg.NumericValueOutOfRange(), None),  # 22003: the event's data
        (pg.ProgramLimitExceeded(), None),  # 54000: an OperationalError, yet the event's
    ],
)
def test_the_sqlstate_says_whether_the_database_or_the_event_is_at_fault(error, trouble):
    assert database_trouble(wrapped(error)) == trouble


def test_an_error_that_is_no_database_error_is_the_events():
    assert database_trouble(RuntimeError("a bug")) is None
