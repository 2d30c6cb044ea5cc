"""The inbox: apply each event once per consumer, in the same transaction as its effect."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def claim(session: Session, table: Table, event_id: str, consumer: str, event_type: str) -> bool:
    """Record that this consumer applies the event now; return False if it did before.

    One statement instead of a look and a write. A concurrent application of the same
    event waits on PostgreSQL for the other transaction: if that one commits, this is a
    no-op (False); if it rolls back, this one applies the event.
    """
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    result = session.execute(
        dialect.insert(table)
        .values(
            event_id=event_id,
            consumer=consumer,
            event_type=event_type,
            received_at=dt.datetime.now(dt.UTC),
        )
        .on_conflict_do_nothing()
        # psycopg reports no row count here; a returned row says the insert happened.
        .returning(table.c.event_id)
    )
    return result.first() is not None
