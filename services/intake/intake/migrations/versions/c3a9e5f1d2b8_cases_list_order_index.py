"""cases: the list's order (received_at, case_number) as an index

Revision ID: c3a9e5f1d2b8
Revises: 673a06a3ea8b
Create Date: 2026-11-27 12:00:00

The case list is newest first; without this index an admin's first page sorted the
whole table (1,000,000 cases: hundreds of milliseconds).
"""
from typing import Sequence, Union

from alembic import op


# revision identifiers, used by Alembic.
revision: str = 'c3a9e5f1d2b8'
down_revision: Union[str, Sequence[str], None] = '673a06a3ea8b'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.create_index('ix_cases_received_number', ['received_at', 'case_number'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index('ix_cases_received_number')
