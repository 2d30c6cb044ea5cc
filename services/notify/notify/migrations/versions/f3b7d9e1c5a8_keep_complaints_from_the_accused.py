"""keep a complaint's notifications from the unit it accuses

Revision ID: f3b7d9e1c5a8
Revises: e2a6c8f0b3d5
Create Date: 2026-12-01 10:00:00

Notify decided who reads a case's notifications by jurisdiction alone, so a supervisor of
the unit a complaint accuses (or of a unit below it) could list them and print the letter
naming the visitor in full. ``confidential_cases`` keeps whom each complaint accuses, from
``case.registered``; ``access.py`` keeps its notifications from that unit and the units
below it, as routing and supervision do.

Notify did not keep the accused before. A case routing marked confidential in an
assignment notification already recorded (``payload.confidential``, the default
``assignment`` rules) is recorded here with its accused not known, so it is kept from every
supervisor but its desk's and its handling unit's: safe rather than open. A complaint none
of whose assignment notifications was recorded (those rules switched off) stays readable as
before until its ``case.registered`` is delivered again.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


revision: str = 'f3b7d9e1c5a8'
down_revision: Union[str, Sequence[str], None] = 'e2a6c8f0b3d5'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BATCH = 1000


def upgrade() -> None:
    op.create_table(
        'confidential_cases',
        sa.Column('case_id', sa.String(length=64), nullable=False),
        sa.Column('accused_unit', sa.String(length=64), nullable=True),
        sa.Column('accused_known', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('case_id', name=op.f('pk_confidential_cases')),
    )
    notifications = sa.table(
        'notifications',
        sa.column('case_id', sa.String),
        sa.column('kind', sa.String),
        sa.column('payload', sa.JSON),
    )
    confidential = sa.table(
        'confidential_cases',
        sa.column('case_id', sa.String),
        sa.column('accused_unit', sa.String),
        sa.column('accused_known', sa.Boolean),
    )
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(notifications.c.case_id, notifications.c.payload).where(
            notifications.c.kind == 'assignment'
        )
    )
    cases = sorted(
        {case_id for case_id, payload in rows if (payload or {}).get('confidential') is True}
    )
    for start in range(0, len(cases), BATCH):
        op.bulk_insert(
            confidential,
            [
                {'case_id': case_id, 'accused_unit': None, 'accused_known': False}
                for case_id in cases[start:start + BATCH]
            ],
        )


def downgrade() -> None:
    op.drop_table('confidential_cases')
