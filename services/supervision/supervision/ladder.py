"""The deadline clock and the escalation ladder (督办阶梯): timers, and the sweep that fires them.

When routing gives a case its due date the clock starts: one timer per active ladder step,
each at the instant the step comes due. An extension moves the clock (a new generation with
new timers); a resolution stops it (its timers go); a case resolved on the spot never has
one. The sweep fires the timers that are due as of an instant, in batches claimed with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so any number of sweeps run side by side. Each
firing inserts a ``ladder_firings`` row keyed by (case, step, generation) in the same
transaction as its outbox row: a step fires once per clock whatever runs twice.

The ladder in force when a clock starts or moves governs that clock: changing a step
through the API applies to clocks started or moved afterwards (a case's deadlines are
fixed when it is assigned, as its due date is).
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import logging
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, delete, exists, func, insert, select, tuple_, update
from sqlalchemy import case as sa_case
from sqlalchemy.orm import Session, aliased

from eventbus import envelope
from servicekit.localtime import local_zone
from servicekit.runtime import Runtime
from servicekit.types import UtcDateTime
from supervision import models

log = logging.getLogger(__name__)

SERVICE = "supervision"
# How many due timers one transaction claims: small enough to hold locks briefly.
DEFAULT_BATCH = 500
# The unit whose leader is "the city leader" when the directory names no city root.
CITY_UNIT = "city"

DEFAULT_STEPS: tuple[dict[str, Any], ...] = (
    {"step": "warning", "position": 1, "event": "warning", "percent_of_term": 80},
    {"step": "overdue", "position": 2, "event": "overdue", "months_after_due": 0},
    {
        "step": "unit-leader",
        "position": 3,
        "event": "escalated",
        "level": 1,
        "months_after_due": 1,
        "supervised_by": "unit",
    },
    {
        "step": "city-leader",
        "position": 4,
        "event": "escalated",
        "level": 2,
        "months_after_due": 3,
        "supervised_by": "city",
    },
)


def add_months(instant: dt.datetime, months: int, zone: ZoneInfo | None = None) -> dt.datetime:
    """Return the instant ``months`` calendar months later, in UTC.

    Counted on the programme's calendar (``NIGHTTALK_TIMEZONE``; ``zone`` when the caller
    has read it already): the same local time, across a change of the clocks too. A day
    the target month lacks becomes its last day (31 January + 1 month = 28 February).
    """
    return _local_months_later(instant.astimezone(zone or local_zone()), months).astimezone(dt.UTC)


def _local_months_later(local: dt.datetime, months: int) -> dt.datetime:
    index = local.month - 1 + months
    year, month = local.year + index // 12, index % 12 + 1
    day = min(local.day, calendar.monthrange(year, month)[1])
    # A wall time in the zone: its offset is the one in force on the new date.
    return local.replace(year=year, month=month, day=day)


def fire_at(
    step: models.LadderStep,
    started_at: dt.datetime,
    due_at: dt.datetime,
    zone: ZoneInfo | None = None,
) -> dt.datetime:
    """Return when a step comes due on a clock started at ``started_at`` and due at ``due_at``.

    Months and days after the due date are the programme's calendar months and days: the
    step fires at the due date's local time, whatever the clocks did in between.
    """
    if step.percent_of_term is not None:
        term = max(due_at - started_at, dt.timedelta(0))
        return started_at + term * step.percent_of_term / 100
    local = _local_months_later(due_at.astimezone(zone or local_zone()), step.months_after_due or 0)
    # Adding to a wall time keeps it (Python's arithmetic within one zone): local days.
    return (local + dt.timedelta(days=step.days_after_due or 0)).astimezone(dt.UTC)


def active_steps(session: Session) -> list[models.LadderStep]:
    """Return the ladder's active steps in order, read once per transaction.

    Only event handlers start clocks, in a session that lives for one unit of work (a
    consumer's batch), which never changes the ladder: the memo cannot go stale.
    """
    memo = session.info.get("active_steps")
    if memo is None:
        memo = session.info["active_steps"] = list(
            session.scalars(
                select(models.LadderStep)
                .where(models.LadderStep.active.is_(True))
                .order_by(models.LadderStep.position)
            )
        )
    return memo


@functools.cache
def _stop_clock_statement():
    # Timers are only ever rows (never loaded as objects), so a Core DELETE, built once.
    table = models.ClockTimer.__table__
    return delete(table).where(table.c.case_id == bindparam("case_id"))


def stop_clock(session: Session, case: models.SupervisedCase) -> None:
    """Stop the case's clock: the steps still to come never fire."""
    session.execute(_stop_clock_statement(), {"case_id": case.case_id})


def restart_clock(session: Session, case: models.SupervisedCase) -> None:
    """Start the case's clock afresh at its due date: a new generation with its own timers."""
    if case.clock_generation:
        stop_clock(session, case)  # timers are only written here: generation 0 has none
    case.clock_generation = (case.clock_generation or 0) + 1
    case.ladder_position = 0
    case.ladder_step = None
    if case.status != models.ROUTED or case.due_at is None:
        return
    started_at = case.routed_at or case.due_at
    zone = local_zone()  # once per clock, not per step
    timers = [
        {
            "case_id": case.case_id,
            "step": step.step,
            "generation": case.clock_generation,
            "fire_at": fire_at(step, started_at, case.due_at, zone),
        }
        for step in active_steps(session)
    ]
    if timers:
        # The steps' rows in one round trip (executemany), by a statement compiled once: a
        # multi-VALUES INSERT would be compiled anew for every case.
        session.execute(insert(models.ClockTimer.__table__), timers)


@dataclass
class SweepResult:
    """What one sweep fired, by step."""

    fired: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.fired.values())


def claim_statement(dialect: str, as_of: dt.datetime, batch: int):
    """Return the query of due timers of running clocks, oldest first, read by the fire_at index.

    On PostgreSQL it locks what it returns and skips rows another sweep holds; it locks the
    case too, so a handler moving the clock waits for this sweep, and this sweep skips a
    case a handler holds.

    A timer is taken only if no earlier timer of its case is left: a case's steps go out in
    the ladder's order however sweeps interleave. Skipping locked rows alone would not
    ensure it: a sweep that locks a timer and then finds its case held skips the row but
    keeps the timer's lock to its commit, so the sweep holding the case would skip that
    step and fire the next one first.
    """
    timer, case = models.ClockTimer, models.SupervisedCase
    earlier = aliased(timer)
    stmt = (
        select(
            timer.case_id,
            timer.step,
            timer.generation,
            timer.fire_at,
            case.case_number,
            case.responsible_unit,
            case.due_at,
            case.clock_generation,
            case.status,
        )
        .join(case, case.case_id == timer.case_id)
        .where(
            timer.fire_at <= as_of,
            ~exists().where(earlier.case_id == timer.case_id, earlier.fire_at < timer.fire_at),
        )
        .order_by(timer.fire_at)
        .limit(batch)
    )
    if dialect == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, of=[timer.__table__, case.__table__])
    return stmt


def _claim(session: Session, as_of: dt.datetime, batch: int) -> list[tuple[Any, ...]]:
    """Return due timers of running clocks, locked (skipping rows another sweep holds)."""
    return list(session.execute(claim_statement(session.get_bind().dialect.name, as_of, batch)))


def _supervisors(session: Session, units: set[str]) -> dict[str, models.Unit]:
    """Return the directory entries of the given units and of all their ancestors."""
    found: dict[str, models.Unit] = {}
    wanted = {u for u in units if u}
    while wanted:
        rows = session.scalars(select(models.Unit).where(models.Unit.code.in_(wanted))).all()
        found.update({row.code: row for row in rows})
        wanted = {row.parent for row in rows if row.parent and row.parent not in found}
    return found


def _city_of(unit: str | None, directory: dict[str, models.Unit]) -> str:
    """Return the top of the unit's tree in the directory: the city."""
    seen: set[str] = set()
    while unit in directory and directory[unit].parent and unit not in seen:
        seen.add(unit)
        unit = directory[unit].parent
    return unit if unit in directory else CITY_UNIT


def _event_data(
    step: models.LadderStep, row: Any, directory: dict[str, models.Unit]
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "case_id": row.case_id,
        "case_number": row.case_number,
        "unit": row.responsible_unit,
        "due_at": row.due_at.isoformat(),
        "occurred_at": row.fire_at.isoformat(),
        "step": step.step,
    }
    if step.event == "escalated":
        supervisor_unit = (
            row.responsible_unit
            if step.supervised_by == "unit"
            else _city_of(row.responsible_unit, directory)
        )
        known = directory.get(supervisor_unit) if supervisor_unit else None
        data.update(
            level=step.level,
            supervisor_unit=supervisor_unit,
            supervisor=known.leader if known else None,
        )
    return data


def _fire_batch(uow, as_of: dt.datetime, batch: int, result: SweepResult) -> int:
    """Fire one claimed batch of due timers in the unit of work; return how many it claimed.

    Set-based: a handful of statements per batch whatever its size (the firings' insert,
    the timeline's, the cases' ladder positions, the timers' delete), so a sweep over a
    large backlog costs a few milliseconds of SQL per batch, not a round trip per row.
    """
    session = uow.session
    rows = _claim(session, as_of, batch)
    if not rows:
        return 0
    steps = {s.step: s for s in session.scalars(select(models.LadderStep))}
    directory = _supervisors(session, {row.responsible_unit for row in rows})
    now = dt.datetime.now(dt.UTC)
    candidates = {}
    for row in rows:
        step = steps.get(row.step)
        live = (
            step is not None
            and row.generation == row.clock_generation
            and row.status == models.ROUTED
            and row.due_at is not None
        )
        if not live:
            continue  # a clock that moved or stopped: its timer just goes
        data = _event_data(step, row, directory)
        outgoing = envelope.build(
            service=SERVICE,
            routing_key=f"case.{step.event}",
            subject=row.case_id,
            data=data,
            time=row.fire_at,
        )
        candidates[(row.case_id, row.step, row.generation)] = (row, step, data, outgoing)
    fired = _record_firings(session, candidates.values(), now)
    positions: dict[str, list[tuple[models.LadderStep, Any]]] = {}
    timeline = []
    for key, (row, step, data, outgoing) in candidates.items():
        if key not in fired:
            continue  # another sweep fired this step of this clock already
        uow.emit(outgoing)
        timeline.append(
            {
                "event_id": outgoing.event_id,
                "case_id": row.case_id,
                "event_type": outgoing.routing_key,
                "occurred_at": row.fire_at,
                "recorded_at": now,
                "summary": {k: v for k, v in data.items() if k != "case_id"},
            }
        )
        positions.setdefault(row.case_id, []).append((step, row.fire_at))
        result.fired[step.step] = result.fired.get(step.step, 0) + 1
        log.info(
            "ladder step fired",
            extra={"case_id": row.case_id, "step": step.step, "generation": row.generation},
        )
    if timeline:
        session.execute(insert(models.TimelineEntry.__table__), timeline)
    if positions:
        _advance_positions(session, positions)
    keys = [(row.case_id, row.step, row.generation) for row in rows]
    timer = models.ClockTimer
    session.execute(
        delete(timer).where(tuple_(timer.case_id, timer.step, timer.generation).in_(keys))
    )
    return len(rows)


def _record_firings(session: Session, candidates, now: dt.datetime) -> set[tuple[str, str, int]]:
    """Insert the firings in one statement; return the keys inserted (not fired before)."""
    if not candidates:
        return set()
    firings = models.LadderFiring.__table__
    values = [
        {
            "case_id": row.case_id,
            "step": row.step,
            "generation": row.generation,
            "event_id": outgoing.event_id,
            "due_at": row.due_at,
            "fire_at": row.fire_at,
            "fired_at": now,
        }
        for row, _step, _data, outgoing in candidates
    ]
    # One statement sent as multi-row INSERTs (SQLAlchemy's insertmanyvalues), compiled
    # once; RETURNING names only the rows inserted, not those another sweep fired.
    inserted = session.execute(
        _insert(session)(firings)
        .on_conflict_do_nothing()
        .returning(firings.c.case_id, firings.c.step, firings.c.generation),
        values,
    )
    return {tuple(key) for key in inserted}


def _advance_positions(session: Session, fired: dict[str, list[tuple[models.LadderStep, Any]]]):
    """Move each case's ladder forward and note its first listings, in one statement.

    The position only moves to a step further along; the instant of the first listing at
    levels 1 and 2 (the unit's and the city's leader) is kept once set.
    """
    case = models.SupervisedCase.__table__
    position = bindparam("b_position")
    further = case.c.ladder_position < position
    params = []
    for case_id, steps in fired.items():
        furthest = max(steps, key=lambda pair: pair[0].position)[0]
        listed = {1: None, 2: None}
        for step, fire_at in steps:
            if step.event == "escalated" and step.level in listed:
                listed[step.level] = min(filter(None, (listed[step.level], fire_at)))
        params.append(
            {
                "b_case_id": case_id,
                "b_position": furthest.position,
                "b_step": furthest.step,
                "b_level_1": listed[1],
                "b_level_2": listed[2],
            }
        )
    session.execute(
        update(case)
        .where(case.c.case_id == bindparam("b_case_id"))
        .values(
            ladder_position=sa_case((further, position), else_=case.c.ladder_position),
            ladder_step=sa_case((further, bindparam("b_step")), else_=case.c.ladder_step),
            escalated_level_1_at=func.coalesce(
                case.c.escalated_level_1_at, bindparam("b_level_1", type_=UtcDateTime())
            ),
            escalated_level_2_at=func.coalesce(
                case.c.escalated_level_2_at, bindparam("b_level_2", type_=UtcDateTime())
            ),
        )
        .execution_options(synchronize_session=False),
        params,
    )


def _insert(session: Session):
    from supervision.handlers import _insert as dialect_insert

    return dialect_insert(session)


def sweep(runtime: Runtime, as_of: dt.datetime, *, batch: int = DEFAULT_BATCH) -> SweepResult:
    """Fire every ladder step due as of ``as_of``, batch by batch, each batch one transaction."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must carry its offset")
    result = SweepResult()
    while True:
        with runtime.unit_of_work() as uow:
            claimed = _fire_batch(uow, as_of, batch, result)
            if not claimed:
                return result
            uow.commit()
