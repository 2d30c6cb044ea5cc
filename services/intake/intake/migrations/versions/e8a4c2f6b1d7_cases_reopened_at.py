"""cases.reopened_at: supervision's latest reopening of a case (case.reopened)

Revision ID: e8a4c2f6b1d7
Revises: c5f1a8d3e7b2
Create Date: 2026-11-29 15:00:00

intake did not hear case.reopened before: a case reopened earlier shows what intake last
knew (resolved, or resolved_on_spot) until routing sends it back (case.routed) or
supervision closes it; reopenings already published were never delivered to intake and
cannot be backfilled. A new nullable column rewrites nothing.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "e8a4c2f6b1d7"
down_revision: str | Sequence[str] | None = "c5f1a8d3e7b2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reopened_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("reopened_at")
