"""keep the assignments of a case: which unit, in which role

Revision ID: e2a6c8f0b3d5
Revises: d7b3e9f1a2c4
Create Date: 2026-12-01 09:00:00

A co-handling unit's (协办) resolution was sent to the visitor as the case's answer, with a
satisfaction survey. Routing now names the role in its assignment.* events; for an event
without it, notify judges by the role ``case.routed`` gave the assignment, kept here.
Assignments routed before this revision are not known: their resolutions are taken for the
lead's, as before.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


revision: str = 'e2a6c8f0b3d5'
down_revision: Union[str, Sequence[str], None] = 'd7b3e9f1a2c4'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'case_assignments',
        sa.Column('assignment_id', sa.String(length=64), nullable=False),
        sa.Column('case_id', sa.String(length=64), nullable=False),
        sa.Column('unit', sa.String(length=64), nullable=False),
        sa.Column('role', sa.String(length=10), nullable=False),
        sa.PrimaryKeyConstraint('assignment_id', name=op.f('pk_case_assignments')),
    )
    with op.batch_alter_table('case_assignments', schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f('ix_case_assignments_case_id'), ['case_id'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('case_assignments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_assignments_case_id'))
    op.drop_table('case_assignments')
