"""idempotent_requests.key: room for Open311's prefix before a 200-character key

Revision ID: c5f1a8d3e7b2
Revises: b4e8f2a6c1d9
Create Date: 2026-11-29 14:40:00

Open311 keys are stored as ``open311:<key>`` (apart from /v1's); the endpoint takes keys of
up to 200 characters, which did not fit a 200-character column on PostgreSQL. Widening a
varchar rewrites nothing there.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "c5f1a8d3e7b2"
down_revision: str | Sequence[str] | None = "b4e8f2a6c1d9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("idempotent_requests", schema=None) as batch_op:
        batch_op.alter_column(
            "key", existing_type=sa.String(200), type_=sa.String(208), existing_nullable=False
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("idempotent_requests", schema=None) as batch_op:
        batch_op.alter_column(
            "key", existing_type=sa.String(208), type_=sa.String(200), existing_nullable=False
        )
