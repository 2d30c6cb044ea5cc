"""keep the receiving unit of a case on its link to the visit

Revision ID: d7b3e9f1a2c4
Revises: c5e8a2f4b6d1
Create Date: 2026-11-29 05:00:00

Notifications are kept under the unit that received their case (its desk reads them and
prints the visitor's letter). That unit was read from the case's receipt, so with the
receipt's rule switched off the answer, its letter, the satisfaction survey and the unit's
warnings were kept under the answering or responsible unit instead, and the desk could
neither list them nor print the letter (404). The link of a case to its visit, which
``case.registered`` and ``visit.contact_recorded`` both write, now keeps the unit too.

Existing links learn it from the case's receipt or the visit's contact, and a case's
notifications kept under another unit move to it.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


revision: str = 'd7b3e9f1a2c4'
down_revision: Union[str, Sequence[str], None] = 'c5e8a2f4b6d1'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column('contact_cases', sa.Column('unit', sa.String(length=64), nullable=True))
    op.execute(
        """
        UPDATE contact_cases SET unit = (
            SELECT n.unit FROM notifications n
            WHERE n.case_id = contact_cases.case_id AND n.kind = 'receipt'
            LIMIT 1)
        """
    )
    op.execute(
        """
        UPDATE contact_cases SET unit = (
            SELECT c.unit FROM visitor_contacts c WHERE c.visit_id = contact_cases.visit_id)
        WHERE unit IS NULL
        """
    )
    op.execute(
        """
        UPDATE notifications SET unit = (
            SELECT l.unit FROM contact_cases l WHERE l.case_id = notifications.case_id)
        WHERE EXISTS (
            SELECT 1 FROM contact_cases l
            WHERE l.case_id = notifications.case_id
              AND l.unit IS NOT NULL AND l.unit <> notifications.unit)
        """
    )


def downgrade() -> None:
    with op.batch_alter_table('contact_cases', schema=None) as batch_op:
        batch_op.drop_column('unit')
