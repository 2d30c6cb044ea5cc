"""board index of unresolved cases, in the board's order

Revision ID: d5f3b8e2a6c1
Revises: c4e2a7d1f9b3
Create Date: 2026-11-27 15:30:00

The board's first page sorted every unresolved case (0.35 s at 1,000,000): the statuses
came first in the old index, and three of them cannot give one order. The new index holds
only unresolved cases, in the board's order, so a page is the first rows of one scan.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = 'd5f3b8e2a6c1'
down_revision: Union[str, Sequence[str], None] = 'c4e2a7d1f9b3'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

UNRESOLVED = sa.text("status IN ('open', 'routed', 'reopened')")


def upgrade() -> None:
    """Upgrade schema."""
    op.drop_index('ix_supervised_cases_board', table_name='supervised_cases')
    op.create_index(
        'ix_supervised_cases_board_unresolved',
        'supervised_cases',
        [sa.text('ladder_position DESC'), 'received_at', 'case_number'],
        unique=False,
        postgresql_where=UNRESOLVED,
        sqlite_where=UNRESOLVED,
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_supervised_cases_board_unresolved', table_name='supervised_cases')
    op.create_index(
        'ix_supervised_cases_board',
        'supervised_cases',
        ['status', 'ladder_position', 'received_at'],
        unique=False,
    )
