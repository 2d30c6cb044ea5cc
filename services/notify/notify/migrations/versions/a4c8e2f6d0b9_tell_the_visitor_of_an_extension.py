"""tell the visitor when the due date moves (assignment.extension_granted)

Revision ID: a4c8e2f6d0b9
Revises: f3b7d9e1c5a8
Create Date: 2026-12-01 11:00:00

A visitor holds a receipt promising an answer by a date; when routing extends the lead's
assignment, notify now tells them the new date by SMS (kind ``extended``). The rule is
seeded on; an admin switches it off, or adds the letter, through /v1/rules.
"""
import datetime
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


revision: str = 'a4c8e2f6d0b9'
down_revision: Union[str, Sequence[str], None] = 'f3b7d9e1c5a8'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

RULE = {
    'event': 'assignment.extension_granted',
    'kind': 'extended',
    'recipient_kind': 'visitor',
    'channel': 'sms',
}

rules = sa.table(
    'rules',
    sa.column('event', sa.String), sa.column('kind', sa.String),
    sa.column('recipient_kind', sa.String), sa.column('channel', sa.String),
    sa.column('enabled', sa.Boolean), sa.column('updated_at', sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    seeded_at = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
    op.bulk_insert(rules, [{**RULE, 'enabled': True, 'updated_at': seeded_at}])


def downgrade() -> None:
    op.execute(
        rules.delete().where(
            sa.and_(*(rules.c[name] == value for name, value in RULE.items()))
        )
    )
