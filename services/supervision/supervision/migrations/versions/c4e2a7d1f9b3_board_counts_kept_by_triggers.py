"""board counts kept by triggers: unresolved cases by unit, category and ladder step

Revision ID: c4e2a7d1f9b3
Revises: b7e1c2d4a9f0
Create Date: 2026-11-27 15:00:00

The board counted every unresolved case at each request (0.6 to 1.5 s at 1,000,000 cases).
Triggers on supervised_cases now append each change of an unresolved case's key to
board_changes, which the scheduler folds into board_counts (supervision/board_counts.py).
The counts start from the cases already here.

SQLite: a later batch_alter_table on supervised_cases rebuilds the table and drops these
triggers; such a migration must create them again (test_supervision_board_counts fails
otherwise).
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = 'c4e2a7d1f9b3'
down_revision: Union[str, Sequence[str], None] = 'b7e1c2d4a9f0'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

UNRESOLVED = "('open', 'routed', 'reopened')"
COLUMNS = "owner_unit, category, ladder_position, ladder_step"


def _key(row: str = "") -> str:
    """The SQL of a case's board key, of a row alias (``NEW.``/``OLD.``) or a table's rows."""
    return (
        f"coalesce({row}responsible_unit, {row}receiving_unit), coalesce({row}category, ''), "
        f"{row}ladder_position, coalesce({row}ladder_step, '')"
    )


def _postgresql_function(name: str, parts: list[tuple[str, int]]) -> str:
    moved = " UNION ALL ".join(
        f"SELECT {_key()}, {sign} FROM {rows} WHERE status IN {UNRESOLVED}"
        for rows, sign in parts
    )
    return f"""
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO board_changes ({COLUMNS}, delta)
    SELECT {COLUMNS}, sum(delta)
    FROM ({moved}) AS moved ({COLUMNS}, delta)
    GROUP BY {COLUMNS}
    HAVING sum(delta) <> 0;
    RETURN NULL;
END
$$"""


POSTGRESQL = [
    _postgresql_function("board_on_insert", [("new_rows", 1)]),
    _postgresql_function("board_on_update", [("old_rows", -1), ("new_rows", 1)]),
    _postgresql_function("board_on_delete", [("old_rows", -1)]),
    # Statement triggers with transition tables: one insert per statement, however many rows
    # the sweep's set-based update moves.
    "CREATE TRIGGER board_on_insert AFTER INSERT ON supervised_cases"
    " REFERENCING NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION board_on_insert()",
    "CREATE TRIGGER board_on_update AFTER UPDATE ON supervised_cases"
    " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION board_on_update()",
    "CREATE TRIGGER board_on_delete AFTER DELETE ON supervised_cases"
    " REFERENCING OLD TABLE AS old_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION board_on_delete()",
]

# SQLite has row triggers only. An update changes the board when the case enters or leaves
# the unresolved statuses, or its key moves; then the old key loses one, the new gains one.
_SAME = (
    f"(NEW.status IN {UNRESOLVED}) = (OLD.status IN {UNRESOLVED})"
    " AND coalesce(NEW.responsible_unit, NEW.receiving_unit)"
    " IS coalesce(OLD.responsible_unit, OLD.receiving_unit)"
    " AND NEW.category IS OLD.category"
    " AND NEW.ladder_position IS OLD.ladder_position"
    " AND NEW.ladder_step IS OLD.ladder_step"
)


def _sqlite_trigger(name: str, event: str, when: str, row: str, sign: int) -> str:
    return (
        f"CREATE TRIGGER {name} AFTER {event} ON supervised_cases WHEN {when} BEGIN"
        f" INSERT INTO board_changes ({COLUMNS}, delta) VALUES ({_key(row)}, {sign}); END"
    )


SQLITE = [
    _sqlite_trigger("board_on_insert", "INSERT", f"NEW.status IN {UNRESOLVED}", "NEW.", 1),
    _sqlite_trigger(
        "board_on_update_leave",
        "UPDATE",
        f"OLD.status IN {UNRESOLVED} AND NOT ({_SAME})",
        "OLD.",
        -1,
    ),
    _sqlite_trigger(
        "board_on_update_enter",
        "UPDATE",
        f"NEW.status IN {UNRESOLVED} AND NOT ({_SAME})",
        "NEW.",
        1,
    ),
    _sqlite_trigger("board_on_delete", "DELETE", f"OLD.status IN {UNRESOLVED}", "OLD.", -1),
]


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'board_counts',
        sa.Column('owner_unit', sa.String(length=64), nullable=False),
        sa.Column('category', sa.String(length=40), nullable=False),
        sa.Column('ladder_position', sa.Integer(), nullable=False),
        sa.Column('ladder_step', sa.String(length=30), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('owner_unit', 'category', 'ladder_position', 'ladder_step', name=op.f('pk_board_counts')),
    )
    op.create_table(
        'board_changes',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('owner_unit', sa.String(length=64), nullable=False),
        sa.Column('category', sa.String(length=40), nullable=False),
        sa.Column('ladder_position', sa.Integer(), nullable=False),
        sa.Column('ladder_step', sa.String(length=30), nullable=False),
        sa.Column('delta', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_board_changes')),
    )
    op.execute(
        f"INSERT INTO board_counts ({COLUMNS}, count)"
        f" SELECT {_key()}, count(*) FROM supervised_cases"
        f" WHERE status IN {UNRESOLVED} GROUP BY 1, 2, 3, 4"
    )
    statements = POSTGRESQL if op.get_bind().dialect.name == "postgresql" else SQLITE
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    """Downgrade schema."""
    if op.get_bind().dialect.name == "postgresql":
        for name in ("board_on_insert", "board_on_update", "board_on_delete"):
            op.execute(f"DROP TRIGGER {name} ON supervised_cases")
            op.execute(f"DROP FUNCTION {name}()")
    else:
        for name in ("board_on_insert", "board_on_update_leave", "board_on_update_enter", "board_on_delete"):
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table('board_changes')
    op.drop_table('board_counts')
