"""answered on the spot, kept on the case

Revision ID: a8c6e1b5d9f4
Revises: f7b5d0a4c8e3
Create Date: 2026-11-29 15:00:00

A case answered on the spot now takes its visitor's feedback: satisfied closes it, so its
status no longer says it was answered on the spot. The case keeps that fact itself. Until
now such a case never left the status resolved_on_spot: those are the ones answered so.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "a8c6e1b5d9f4"
down_revision: str | Sequence[str] | None = "f7b5d0a4c8e3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    # A plain ADD COLUMN on SQLite too (not a batch rebuild, which would drop the board's
    # triggers on supervised_cases).
    op.add_column(
        "supervised_cases",
        sa.Column("answered_on_spot", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    cases = sa.table(
        "supervised_cases",
        sa.column("status", sa.String),
        sa.column("answered_on_spot", sa.Boolean),
    )
    op.execute(
        cases.update().where(cases.c.status == "resolved_on_spot").values(answered_on_spot=True)
    )


def downgrade() -> None:
    """Downgrade schema."""
    # DROP COLUMN itself (SQLite 3.35 and later), not a batch rebuild: the triggers stay.
    op.execute("ALTER TABLE supervised_cases DROP COLUMN answered_on_spot")
