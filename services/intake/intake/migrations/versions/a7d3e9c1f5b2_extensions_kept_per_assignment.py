"""assignment_reports.extended_due_at: extensions routing granted, per assignment

Revision ID: a7d3e9c1f5b2
Revises: f2c8d5e3b1a4
Create Date: 2026-11-29 11:00:00

intake did not hear assignment.extension_granted before: extensions granted earlier were
never delivered to it and cannot be backfilled. Such a case shows routing's first due date
until its next extension or routing.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "a7d3e9c1f5b2"
down_revision: str | Sequence[str] | None = "f2c8d5e3b1a4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("assignment_reports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("extended_due_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("assignment_reports", schema=None) as batch_op:
        batch_op.drop_column("extended_due_at")
