"""index of unresolved cases by the unit they accuse

Revision ID: e6a4c9f3b7d2
Revises: d5f3b8e2a6c1
Create Date: 2026-11-29 12:00:00

A complaint is kept from the unit it accuses and the units below it: the board takes
those cases off its counts, which do not know whom a case accuses, by reading them from
the cases. This index holds only unresolved cases that accuse a unit, so that read
touches those few, not every unresolved case.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = 'e6a4c9f3b7d2'
down_revision: Union[str, Sequence[str], None] = 'd5f3b8e2a6c1'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

ACCUSING_UNRESOLVED = sa.text(
    "status IN ('open', 'routed', 'reopened') AND accused_unit IS NOT NULL"
)


def upgrade() -> None:
    """Upgrade schema."""
    op.create_index(
        'ix_supervised_cases_accused_unresolved',
        'supervised_cases',
        ['accused_unit'],
        unique=False,
        postgresql_where=ACCUSING_UNRESOLVED,
        sqlite_where=ACCUSING_UNRESOLVED,
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_supervised_cases_accused_unresolved', table_name='supervised_cases')
