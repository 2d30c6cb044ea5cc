"""assignment_reports: answers kept per assignment (a co-handler's no longer displaces the lead's)

Revision ID: f2c8d5e3b1a4
Revises: e1b7c4d2a9f3
Create Date: 2026-11-29 10:30:00

cases.pending_resolution_id/pending_resolved_at kept one answer set aside per case; the
answers set aside move to assignment_reports. An answer an earlier one displaced was not
kept and cannot be recovered: such a case resolves when its lead answers again, or
closes through supervision.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "f2c8d5e3b1a4"
down_revision: str | Sequence[str] | None = "e1b7c4d2a9f3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "assignment_reports",
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("assignment_id", sa.String(length=64), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("case_id", "assignment_id", name=op.f("pk_assignment_reports")),
    )
    op.execute(
        "INSERT INTO assignment_reports (case_id, assignment_id, resolved_at)"
        " SELECT id, pending_resolution_id, pending_resolved_at FROM cases"
        " WHERE pending_resolution_id IS NOT NULL"
    )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("pending_resolved_at")
        batch_op.drop_column("pending_resolution_id")


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pending_resolution_id", sa.String(64), nullable=True))
        batch_op.add_column(
            sa.Column("pending_resolved_at", sa.DateTime(timezone=True), nullable=True)
        )
    op.drop_table("assignment_reports")
