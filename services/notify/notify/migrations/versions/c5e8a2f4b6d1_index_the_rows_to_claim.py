"""index the rows a delivery worker claims

Revision ID: c5e8a2f4b6d1
Revises: a3f1c0d9e2b4
Create Date: 2026-11-28 23:50:00

The delivery worker's claim walks a partial index of the rows still to send (pending,
or sending and perhaps left by a dead worker), oldest first. Without it, PostgreSQL's
plan for the prepared claim, made while the table was small, could scan the whole table
on every claim until it was re-planned (at the table's next ANALYZE, say): the cost of a
send grew with every notification ever sent. Building it reads the table once, holding
off notify's writes meanwhile (seconds for millions of rows); the index itself holds only
the rows to send.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


revision: str = 'c5e8a2f4b6d1'
down_revision: Union[str, Sequence[str], None] = 'a3f1c0d9e2b4'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# As in the models (CLAIMABLE), spelt out: a migration must not change when they do.
CLAIMABLE = "status IN ('pending', 'sending')"


def upgrade() -> None:
    op.create_index(
        "ix_notifications_to_claim",
        "notifications",
        ["created_at", "id"],
        postgresql_where=sa.text(CLAIMABLE),
        sqlite_where=sa.text(CLAIMABLE),
    )


def downgrade() -> None:
    op.drop_index("ix_notifications_to_claim", table_name="notifications")
