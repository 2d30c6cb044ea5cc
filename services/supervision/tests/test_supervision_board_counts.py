"""The board's counts, kept by triggers, equal a count of the cases themselves after every move.

The cases move through everything that writes them: registration alone, routing, the
ladder's set-based sweep, a routing to another unit, resolution, an unsatisfied visitor's
reopening and a later routing; the counts are compared with a count of the cases for every
jurisdiction and category the board can ask for, before and after the scheduler folds the
pending changes in. On the run's database (SQLite row triggers, PostgreSQL statement ones).
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import func, select
from supervision_samples import (
    CST,
    assignment_event,
    bearer,
    case_registered,
    case_routed,
    consume,
    new_case,
)
from test_supervision_board import route
from test_supervision_ladder import DUE, THREE_MONTHS

from supervision import board_counts, ladder, models

UNITS = [None, set(), {"lw-buwen"}, {"lw-buwen", "lw-chaoyang"}, {"xc"}, {"city-org"}]
CATEGORIES = [None, "demolition_compensation", "land_acquisition"]


def counted(session, units, category) -> list[tuple]:
    """Count the unresolved cases by ladder step as the board did before it kept counts."""
    case = models.SupervisedCase
    conditions = [case.status.in_(models.UNRESOLVED)]
    if units is not None:
        # Spelled out, not access.in_units: the oracle shares no code with the board.
        owner = func.coalesce(case.responsible_unit, case.receiving_unit)
        conditions.append(owner.in_(sorted(units)))
    if category is not None:
        conditions.append(case.category == category)
    rows = session.execute(
        select(case.ladder_position, case.ladder_step, func.count())
        .where(*conditions)
        .group_by(case.ladder_position, case.ladder_step)
    ).all()
    return sorted(tuple(row) for row in rows)


def assert_counts_hold(rt) -> list[tuple]:
    with rt.sessions() as session:
        for units in UNITS:
            for category in CATEGORIES:
                kept = board_counts.levels(session, units=units, category=category)
                assert sorted(kept) == counted(session, units, category), (units, category)
        return board_counts.levels(session, units=None, category=None)


def compact(rt) -> None:
    with rt.sessions() as session:
        board_counts.compact(session)
        session.commit()
        assert session.scalar(select(func.count()).select_from(models.BoardChange)) == 0


def test_the_kept_counts_equal_the_cases_after_every_kind_of_move(client, rt, directory):
    assert assert_counts_hold(rt) == []
    buwen = route(rt, "lw-buwen")
    route(rt, "lw-buwen", due=dt.datetime(2027, 6, 1, tzinfo=CST))
    moved = route(rt, "lw-chaoyang", category="land_acquisition")
    resolved = route(rt, "lw-chaoyang")
    route(rt, "xc")
    registered_only, number = new_case()
    consume(rt, case_registered(registered_only, number))  # open, owned by its desk
    assert assert_counts_hold(rt) == [(0, None, 6)]

    ladder.sweep(rt, DUE)  # the set-based sweep moves four cases to "overdue"
    assert (2, "overdue", 4) in assert_counts_hold(rt)
    compact(rt)
    assert_counts_hold(rt)

    # Routed again to another unit: the case changes owner, and its count with it.
    case_id, case_number, _ = moved
    later = dt.datetime(2026, 12, 20, 9, 0, tzinfo=CST)
    consume(
        rt,
        case_routed(
            case_id,
            case_number,
            unit="xc",
            routed_at=later,
            due_at=later + dt.timedelta(days=30),
            assignment_id=str(uuid.uuid4()),
            category="land_acquisition",
        ),
    )
    with rt.sessions() as session:
        assert session.get(models.SupervisedCase, case_id).responsible_unit == "xc"
    assert_counts_hold(rt)

    # Resolved, then reopened by an unsatisfied visitor, then routed back.
    case_id, case_number, assignment_id = resolved
    consume(
        rt,
        assignment_event(
            "assignment.resolved",
            case_id,
            case_number,
            assignment_id,
            answer="已补发",
            occurred_at=dt.datetime(2026, 12, 21, 10, 0, tzinfo=CST),
        ),
    )
    assert_counts_hold(rt)
    answered = client.post(
        f"/v1/cases/{case_number}/feedback",
        headers=bearer("city", "supervisor"),
        json={"satisfied": False, "comment": "没有解决"},
    )
    assert answered.status_code == 200 and answered.json["status"] == "reopened"
    assert_counts_hold(rt)
    back = dt.datetime(2026, 12, 22, 9, 0, tzinfo=CST)
    consume(
        rt,
        case_routed(
            case_id,
            case_number,
            unit="lw-chaoyang",
            routed_at=back,
            due_at=back + dt.timedelta(days=30),
            assignment_id=str(uuid.uuid4()),
        ),
    )
    ladder.sweep(rt, THREE_MONTHS)
    final = assert_counts_hold(rt)
    compact(rt)
    assert assert_counts_hold(rt) == final
    compact(rt)  # nothing pending: nothing changes
    assert assert_counts_hold(rt) == final
    assert sum(n for *_, n in final) == 6 - 0  # every case is unresolved again
    assert buwen  # routed first, still on the board


def test_the_scheduler_tick_folds_the_changes_in(rt, directory):
    from supervision.cli import _sweep_once

    route(rt, "lw-buwen")
    with rt.sessions() as session:
        assert session.scalar(select(func.count()).select_from(models.BoardChange)) > 0
    _sweep_once(rt, DUE, batch=500, feedback_days=7)
    with rt.sessions() as session:
        assert session.scalar(select(func.count()).select_from(models.BoardChange)) == 0
        assert session.scalar(select(func.sum(models.BoardCount.count))) == 1
    assert_counts_hold(rt)
