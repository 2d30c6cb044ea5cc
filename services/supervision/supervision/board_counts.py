"""The board's counts of unresolved cases by unit, category and ladder step, kept as cases move.

Counting every unresolved case for the board took 0.6 to 1.5 s at 1,000,000 cases. Instead,
triggers on ``supervised_cases`` (migration ``c4e2a7d1f9b3``, one form per dialect) append
every change of an unresolved case's key — its owner (the responsible unit, else the
receiving one), category, ladder position and step — to ``board_changes`` as -1 for the old
key and +1 for the new. Triggers see every write, the set-based sweep's included, so no code
path can forget a count. They only insert: no transaction waits on another's counter, and
none can deadlock on one.

:func:`compact` (the scheduler, each tick) folds the changes into ``board_counts``;
:func:`levels` reads both in one statement, so its figures are exact at any moment, whether
or not the scheduler has run.
"""

from __future__ import annotations

from sqlalchemy import func, literal, or_, select, text, union_all
from sqlalchemy.orm import Session

from servicekit.db import one_of
from supervision import models

# What the triggers store for a case with no category or no step yet (a key has no NULL).
NONE = ""


def levels(
    session: Session,
    *,
    units: set[str] | None,
    category: str | None,
    withheld: set[str] | None = None,
    own: str | None = None,
) -> list[tuple[int, str | None, int]]:
    """Return (position, step, count) of the unresolved cases of these units, furthest first.

    ``units`` None means every unit; ``category`` None every category. The cases that
    accuse one of the ``withheld`` units (``access.accused_above``), unless ``own`` must
    resolve them, are taken off the counts as they are off the board's rows: the counts
    do not know whom a case accuses, so these few are counted from the cases themselves
    (index ``ix_supervised_cases_accused_unresolved``).
    """

    def narrowed(table, amount):
        query = select(table.ladder_position, table.ladder_step, amount.label("n"))
        if units is not None:
            query = query.where(one_of(session, table.owner_unit, units))
        if category is not None:
            query = query.where(table.category == category)
        return query

    parts = [
        narrowed(models.BoardCount, models.BoardCount.count),
        narrowed(models.BoardChange, models.BoardChange.delta),
    ]
    if withheld is not None:
        case = models.SupervisedCase
        kept_off = select(
            case.ladder_position,
            func.coalesce(case.ladder_step, NONE),
            literal(-1).label("n"),
        ).where(
            case.status.in_(models.UNRESOLVED),
            case.accused_unit.is_not(None),
            one_of(session, case.accused_unit, withheld),
            or_(case.responsible_unit.is_(None), case.responsible_unit != own),
        )
        if units is not None:
            kept_off = kept_off.where(
                one_of(session, func.coalesce(case.responsible_unit, case.receiving_unit), units)
            )
        if category is not None:
            kept_off = kept_off.where(func.coalesce(case.category, NONE) == category)
        parts.append(kept_off)
    rows = union_all(*parts).subquery()
    count = func.sum(rows.c.n)
    found = session.execute(
        select(rows.c.ladder_position, rows.c.ladder_step, count)
        .group_by(rows.c.ladder_position, rows.c.ladder_step)
        # A negative count would be a bug in the triggers: shown, not hidden.
        .having(count != 0)
        .order_by(rows.c.ladder_position.desc(), rows.c.ladder_step)
    ).all()
    return [(position, step or None, int(n)) for position, step, n in found]


_FOLD_POSTGRESQL = """
WITH moved AS (
    DELETE FROM board_changes
    RETURNING owner_unit, category, ladder_position, ladder_step, delta
)
INSERT INTO board_counts (owner_unit, category, ladder_position, ladder_step, count)
SELECT owner_unit, category, ladder_position, ladder_step, sum(delta)
FROM moved
GROUP BY owner_unit, category, ladder_position, ladder_step
ON CONFLICT (owner_unit, category, ladder_position, ladder_step)
DO UPDATE SET count = board_counts.count + excluded.count
"""

_FOLD_SQLITE = """
INSERT INTO board_counts (owner_unit, category, ladder_position, ladder_step, count)
SELECT owner_unit, category, ladder_position, ladder_step, sum(delta)
FROM board_changes
WHERE id <= :upto
GROUP BY owner_unit, category, ladder_position, ladder_step
ON CONFLICT (owner_unit, category, ladder_position, ladder_step)
DO UPDATE SET count = board_counts.count + excluded.count
"""


def compact(session: Session) -> None:
    """Fold the pending changes into the counts, in the caller's transaction."""
    if session.get_bind().dialect.name == "postgresql":
        # One statement: a change committed meanwhile is either moved and counted, or left.
        session.execute(text(_FOLD_POSTGRESQL))
    else:
        # SQLite has one writer at a time: what is there up to ``upto`` stays as it is.
        upto = session.scalar(select(func.max(models.BoardChange.id)))
        if upto is None:
            return
        session.execute(text(_FOLD_SQLITE), {"upto": upto})
        session.execute(text("DELETE FROM board_changes WHERE id <= :upto"), {"upto": upto})
    session.execute(text("DELETE FROM board_counts WHERE count = 0"))
