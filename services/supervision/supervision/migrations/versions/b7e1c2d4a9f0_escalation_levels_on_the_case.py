"""escalation levels on the case: when it was first listed at levels 1 and 2

Revision ID: b7e1c2d4a9f0
Revises: 5f555bb37c8b
Create Date: 2026-11-27 12:00:00

Statistics counted the cases listed at each level by joining every ladder firing; with a
year of cases that join dominated the figure. The case now carries the first instant of
each listing, filled here from the firings already recorded.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = 'b7e1c2d4a9f0'
down_revision: Union[str, Sequence[str], None] = '5f555bb37c8b'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('supervised_cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('escalated_level_1_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('escalated_level_2_at', sa.DateTime(timezone=True), nullable=True))
    for level in (1, 2):
        op.execute(
            f"UPDATE supervised_cases SET escalated_level_{level}_at = ("
            " SELECT min(f.fire_at) FROM ladder_firings AS f"
            " JOIN ladder_steps AS s ON s.step = f.step"
            f" WHERE f.case_id = supervised_cases.case_id AND s.event = 'escalated'"
            f" AND s.level = {level})"
            " WHERE EXISTS (SELECT 1 FROM ladder_firings AS f"
            " JOIN ladder_steps AS s ON s.step = f.step"
            f" WHERE f.case_id = supervised_cases.case_id AND s.event = 'escalated'"
            f" AND s.level = {level})"
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('supervised_cases', schema=None) as batch_op:
        batch_op.drop_column('escalated_level_2_at')
        batch_op.drop_column('escalated_level_1_at')
