"""The outbox and inbox tables, added to each service's own metadata (and migrations)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
)

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants a bigint.
_Position = BigInteger().with_variant(Integer(), "sqlite")


def outbox_table(metadata: MetaData) -> Table:
    """Define the outbox: events committed with the state change, waiting to be published."""
    return Table(
        "outbox",
        metadata,
        Column("position", _Position, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("exchange", String(100), nullable=False),
        Column("routing_key", String(255), nullable=False),
        Column("headers", JSON, nullable=False),
        Column("body", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("sent_at", DateTime(timezone=True), nullable=True),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column("last_error", Text, nullable=True),
        # The relay only ever looks at unsent rows: keep that index small.
        Index(
            "ix_outbox_unsent",
            "position",
            postgresql_where=text("sent_at IS NULL"),
            sqlite_where=text("sent_at IS NULL"),
        ),
    )


def inbox_table(metadata: MetaData) -> Table:
    """Define the inbox: which events each consumer has already applied."""
    return Table(
        "inbox",
        metadata,
        Column("event_id", String(64), primary_key=True),
        Column("consumer", String(64), primary_key=True),
        Column("event_type", String(120), nullable=False),
        Column("received_at", DateTime(timezone=True), nullable=False),
    )


def add_event_tables(metadata: MetaData) -> tuple[Table, Table]:
    """Add the outbox and inbox tables to a service's metadata and return them."""
    return outbox_table(metadata), inbox_table(metadata)
