"""The inbox: apply each event once per consumer, in the same transaction as its effect."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session


def seen(session: Session, table: Table, event_id: str, consumer: str) -> bool:
    """Return True if this consumer has already applied this event."""
    return (
        session.execute(
            select(table.c.event_id).where(
                table.c.event_id == event_id, table.c.consumer == consumer
            )
        ).first()
        is not None
    )


def record(session: Session, table: Table, event_id: str, consumer: str, event_type: str) -> None:
    """Record that this consumer applied the event; a concurrent duplicate fails on commit."""
    session.execute(
        insert(table).values(
            event_id=event_id,
            consumer=consumer,
            event_type=event_type,
            received_at=dt.datetime.now(dt.UTC),
        )
    )
