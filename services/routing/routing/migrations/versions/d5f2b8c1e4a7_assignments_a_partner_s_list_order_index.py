"""assignments: a partner's list order (unit, routed_at) as an index

Revision ID: d5f2b8c1e4a7
Revises: 09ff5a96da83
Create Date: 2026-11-27 12:10:00

A partner reads its assignments newest first; with (unit, status) only, a busy unit's
first page sorted all of its assignments.
"""
from typing import Sequence, Union

from alembic import op


# revision identifiers, used by Alembic.
revision: str = 'd5f2b8c1e4a7'
down_revision: Union[str, Sequence[str], None] = '09ff5a96da83'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.create_index('ix_assignments_unit_routed', ['unit', 'routed_at'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.drop_index('ix_assignments_unit_routed')
