"""wake the delivery worker when a notification becomes due (PostgreSQL)

Revision ID: a3f1c0d9e2b4
Revises: 757bd292d212
Create Date: 2026-11-27 21:20:00

A row that becomes ``pending`` sends ``NOTIFY nighttalk_notify_due`` at its commit (once
per transaction: PostgreSQL folds equal notifications), so the delivery worker sends it at
once instead of at its next look. SQLite has no NOTIFY: there the worker looks every
few seconds, as before.
"""
from typing import Sequence, Union

from alembic import op


revision: str = 'a3f1c0d9e2b4'
down_revision: Union[str, Sequence[str], None] = '757bd292d212'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION notifications_wake_delivery() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('nighttalk_notify_due', '');
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER notifications_wake_delivery
        AFTER INSERT OR UPDATE OF status ON notifications
        FOR EACH ROW WHEN (NEW.status = 'pending')
        EXECUTE FUNCTION notifications_wake_delivery()
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER notifications_wake_delivery ON notifications")
    op.execute("DROP FUNCTION notifications_wake_delivery()")
