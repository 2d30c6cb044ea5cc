"""every feedback answer kept, for the satisfaction figures

Revision ID: f7b5d0a4c8e3
Revises: e6a4c9f3b7d2
Create Date: 2026-11-29 14:00:00

The case kept only its last answer, so a visitor unsatisfied before being satisfied counted
once, satisfied. Each answer is a row now. The answers given before are on the cases'
timelines (``case.feedback_received``, one entry per answer): they are copied from there.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "f7b5d0a4c8e3"
down_revision: str | Sequence[str] | None = "e6a4c9f3b7d2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    answers = op.create_table(
        "feedback_answers",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("satisfied", sa.Boolean(), nullable=False),
        sa.Column("receiving_unit", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=True),
        sa.Column("channel", sa.String(length=20), nullable=True),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_feedback_answers")),
    )
    op.create_index(
        "ix_feedback_answers_answered", "feedback_answers", ["answered_at"], unique=False
    )

    timeline = sa.table(
        "timeline_entries",
        sa.column("event_id", sa.String),
        sa.column("case_id", sa.String),
        sa.column("event_type", sa.String),
        sa.column("occurred_at", sa.DateTime(timezone=True)),
        sa.column("summary", sa.JSON),
    )
    cases = sa.table(
        "supervised_cases",
        sa.column("case_id", sa.String),
        sa.column("receiving_unit", sa.String),
        sa.column("category", sa.String),
        sa.column("channel", sa.String),
    )
    satisfied = timeline.c.summary["satisfied"].as_boolean()
    op.execute(
        answers.insert().from_select(
            [
                "event_id",
                "case_id",
                "answered_at",
                "satisfied",
                "receiving_unit",
                "category",
                "channel",
            ],
            sa.select(
                timeline.c.event_id,
                timeline.c.case_id,
                timeline.c.occurred_at,
                satisfied,
                cases.c.receiving_unit,
                cases.c.category,
                cases.c.channel,
            )
            .select_from(timeline.join(cases, cases.c.case_id == timeline.c.case_id))
            .where(timeline.c.event_type == "case.feedback_received", satisfied.is_not(None)),
        )
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("ix_feedback_answers_answered", table_name="feedback_answers")
    op.drop_table("feedback_answers")
