"""The inbox: apply each event once per consumer, in the same transaction as its effect."""

from __future__ import annotations

import datetime as dt
import functools

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


@functools.cache
def _claim_statement(table: Table, dialect: str):
    # Built once: building a statement and its cache key costs more than running it;
    # the values come as parameters.
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing().returning(table.c.event_id)


def claim(session: Session, table: Table, event_id: str, consumer: str, event_type: str) -> bool:
    """Record that this consumer applies the event now; return False if it did before.

    One statement instead of a look and a write. A concurrent application of the same
    event waits on PostgreSQL for the other transaction: if that one commits, this is a
    no-op (False); if it rolls back, this one applies the event.
    """
    # psycopg reports no row count here; a returned row says the insert happened. On the
    # session's connection: a Core insert needs nothing of the ORM's execution path (nor
    # its flush of pending changes, which the next ORM read or the commit makes anyway).
    connection = session.connection()
    result = connection.execute(
        _claim_statement(table, connection.dialect.name),
        {
            "event_id": event_id,
            "consumer": consumer,
            "event_type": event_type,
            "received_at": dt.datetime.now(dt.UTC),
        },
    )
    return result.first() is not None
