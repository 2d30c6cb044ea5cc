"""The deadline clock and the escalation ladder, swept ``--as-of`` chosen instants.

A case routed on 2026-11-15 and due on 2026-12-15 (the city's calendar) gets its warning
at 80 % of its term, is overdue on the due date, listed for its unit's leader a month
later and for the city leader three months later: each exactly once, however often and
however many sweeps run at the same time.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from supervision_samples import (
    CST,
    NO_BROKER,
    assignment_event,
    case_registered,
    case_resolved_on_spot,
    case_routed,
    consume,
    new_case,
    timeline,
    unit_changed,
)

from servicekit.runtime import make_runtime
from supervision import ladder, models

ROUTED = dt.datetime(2026, 11, 15, 9, 0, tzinfo=CST)
DUE = dt.datetime(2026, 12, 15, 9, 0, tzinfo=CST)
# 80 % of the 30-day term: 24 days after routing.
WARNING_AT = dt.datetime(2026, 12, 9, 9, 0, tzinfo=CST)
ONE_MONTH = dt.datetime(2027, 1, 15, 9, 0, tzinfo=CST)
THREE_MONTHS = dt.datetime(2027, 3, 15, 9, 0, tzinfo=CST)
SECOND = dt.timedelta(seconds=1)


@pytest.fixture
def ladder_runtime(database_url):
    """Yield a runtime whose events stay in the outbox (no broker: see conftest)."""
    runtime = make_runtime("supervision", models.metadata, database_url, NO_BROKER)
    yield runtime
    runtime.close()


def routed_case(runtime, *, unit: str = "lw-buwen", due: dt.datetime = DUE):
    """Register and route a case due on ``due``; return (case id, case number, assignment id)."""
    case_id, number = new_case()
    assignment_id = str(uuid.uuid4())
    consume(runtime, case_registered(case_id, number))
    consume(
        runtime,
        case_routed(
            case_id, number, unit=unit, routed_at=ROUTED, due_at=due, assignment_id=assignment_id
        ),
    )
    return case_id, number, assignment_id


def emitted(runtime, case_id: str | None = None) -> list[tuple[str, dict]]:
    """Return the ladder events in the outbox as (routing key, data), oldest first."""
    with runtime.engine.connect() as conn:
        rows = conn.execute(text("SELECT routing_key, body FROM outbox ORDER BY position")).all()
    events = [(key, json.loads(body)) for key, body in rows]
    return [(k, d) for k, d in events if case_id is None or d["case_id"] == case_id]


def steps_of(runtime, case_id: str) -> list[str]:
    """Return the ladder steps emitted for a case, in order."""
    return [data["step"] for _key, data in emitted(runtime, case_id)]


def test_the_default_ladder_is_seeded_as_data(runtime):
    with runtime.sessions() as session:
        steps = [
            (s.step, s.event, s.level, s.percent_of_term, s.months_after_due, s.supervised_by)
            for s in ladder.active_steps(session)
        ]
    assert steps == [
        ("warning", "warning", None, 80, None, None),
        ("overdue", "overdue", None, None, 0, None),
        ("unit-leader", "escalated", 1, None, 1, "unit"),
        ("city-leader", "escalated", 2, None, 3, "city"),
    ]


def test_a_case_due_on_15_december_climbs_the_ladder_once_per_step(ladder_runtime):
    runtime = ladder_runtime
    consume(runtime, unit_changed("city", parent=None, leader="市长", level="city"))
    consume(runtime, unit_changed("lw-buwen", parent="city", leader="步文镇党委书记"))
    case_id, number, _ = routed_case(runtime)

    assert ladder.sweep(runtime, WARNING_AT - SECOND).total == 0
    assert steps_of(runtime, case_id) == []

    assert ladder.sweep(runtime, WARNING_AT).fired == {"warning": 1}
    assert ladder.sweep(runtime, WARNING_AT).total == 0  # repeated: nothing more
    assert ladder.sweep(runtime, DUE - SECOND).total == 0
    assert ladder.sweep(runtime, DUE).fired == {"overdue": 1}
    assert ladder.sweep(runtime, ONE_MONTH - SECOND).total == 0
    assert ladder.sweep(runtime, ONE_MONTH).fired == {"unit-leader": 1}
    assert ladder.sweep(runtime, THREE_MONTHS - SECOND).total == 0
    assert ladder.sweep(runtime, THREE_MONTHS).fired == {"city-leader": 1}
    assert ladder.sweep(runtime, THREE_MONTHS + dt.timedelta(days=400)).total == 0

    events = emitted(runtime, case_id)
    assert [key for key, _ in events] == [
        "case.warning",
        "case.overdue",
        "case.escalated",
        "case.escalated",
    ]
    warning, overdue, level_1, level_2 = (data for _, data in events)
    assert warning == {
        "case_id": case_id,
        "case_number": number,
        "unit": "lw-buwen",
        "due_at": DUE.astimezone(dt.UTC).isoformat(),
        "occurred_at": WARNING_AT.astimezone(dt.UTC).isoformat(),
        "step": "warning",
    }
    assert overdue["occurred_at"] == DUE.astimezone(dt.UTC).isoformat()
    assert (level_1["level"], level_1["supervisor_unit"], level_1["supervisor"]) == (
        1,
        "lw-buwen",
        "步文镇党委书记",
    )
    assert (level_2["level"], level_2["supervisor_unit"], level_2["supervisor"]) == (
        2,
        "city",
        "市长",
    )
    with runtime.sessions() as session:
        case = session.get(models.SupervisedCase, case_id)
        assert (case.ladder_step, case.ladder_position) == ("city-leader", 4)


def test_one_late_sweep_fires_every_step_due_once(ladder_runtime):
    case_id, _, _ = routed_case(ladder_runtime)

    result = ladder.sweep(ladder_runtime, THREE_MONTHS, batch=1)

    assert result.fired == {"warning": 1, "overdue": 1, "unit-leader": 1, "city-leader": 1}
    assert steps_of(ladder_runtime, case_id) == ["warning", "overdue", "unit-leader", "city-leader"]
    assert ladder.sweep(ladder_runtime, THREE_MONTHS).total == 0


def test_two_sweeps_at_the_same_time_fire_each_step_once(ladder_runtime):
    cases = [routed_case(ladder_runtime)[0] for _ in range(30)]
    barrier = threading.Barrier(2)
    results = []

    def run():
        barrier.wait()
        results.append(ladder.sweep(ladder_runtime, ONE_MONTH, batch=7))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(r.total for r in results) == 90
    for case_id in cases:
        assert steps_of(ladder_runtime, case_id) == ["warning", "overdue", "unit-leader"]
    with ladder_runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(models.LadderFiring)) == 90


def test_two_sweep_processes_at_the_same_time_fire_each_step_once(ladder_runtime, database_url):
    cases = [routed_case(ladder_runtime)[0] for _ in range(20)]
    env = {**os.environ, "SUPERVISION_DATABASE_URL": database_url, "AMQP_URL": NO_BROKER}
    command = [
        str(Path(sys.executable).with_name("nighttalk")),
        "supervision",
        "sweep",
        "--as-of",
        THREE_MONTHS.isoformat(),
        "--batch",
        "5",
    ]
    processes = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    totals = [json.loads(out.decode().strip().splitlines()[-1])["total"] for out, _ in outputs]
    assert sum(totals) == 80
    for case_id in cases:
        assert steps_of(ladder_runtime, case_id) == [
            "warning",
            "overdue",
            "unit-leader",
            "city-leader",
        ]
    # And a third, repeated: nothing.
    again = subprocess.run(command, env=env, capture_output=True, check=True)
    assert json.loads(again.stdout.decode().strip().splitlines()[-1]) == {
        "fired": {},
        "total": 0,
        "closed_no_feedback": 0,
    }


def test_a_step_held_by_another_sweep_holds_back_the_steps_after_it(ladder_runtime):
    """A case's steps go out in the ladder's order, whichever rows other sweeps hold.

    A sweep that locks a timer and then finds its case held skips the row but keeps the
    timer's lock until it commits; the sweep holding the case must then wait for that
    step, not fire the next ones before it.
    """
    if ladder_runtime.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no row locks: one sweep writes at a time")
    held, _, _ = routed_case(ladder_runtime)
    free, _, _ = routed_case(ladder_runtime)
    timer = models.ClockTimer
    with ladder_runtime.engine.connect() as other_sweep:
        other_sweep.execute(
            select(timer.case_id)
            .where(timer.case_id == held, timer.step == "overdue")
            .with_for_update()
        ).one()

        result = ladder.sweep(ladder_runtime, THREE_MONTHS, batch=3)

        assert steps_of(ladder_runtime, held) == ["warning"]
        assert steps_of(ladder_runtime, free) == [
            "warning",
            "overdue",
            "unit-leader",
            "city-leader",
        ]
        assert result.total == 5
        other_sweep.rollback()

    assert ladder.sweep(ladder_runtime, THREE_MONTHS).fired == {
        "overdue": 1,
        "unit-leader": 1,
        "city-leader": 1,
    }
    assert steps_of(ladder_runtime, held) == ["warning", "overdue", "unit-leader", "city-leader"]


def test_a_firing_already_recorded_is_not_emitted_again(ladder_runtime):
    """The unique (case, step, generation) row refuses a step even if its timer came back."""
    case_id, _, _ = routed_case(ladder_runtime)
    ladder.sweep(ladder_runtime, WARNING_AT)
    with ladder_runtime.sessions() as session:
        generation = session.get(models.SupervisedCase, case_id).clock_generation
        session.add(
            models.ClockTimer(
                case_id=case_id, step="warning", generation=generation, fire_at=WARNING_AT
            )
        )
        session.commit()

    assert ladder.sweep(ladder_runtime, WARNING_AT).total == 0
    assert steps_of(ladder_runtime, case_id) == ["warning"]


def test_an_extension_moves_the_clock(ladder_runtime):
    runtime = ladder_runtime
    case_id, number, assignment_id = routed_case(runtime)
    ladder.sweep(runtime, WARNING_AT)
    new_due = dt.datetime(2027, 2, 15, 9, 0, tzinfo=CST)
    consume(
        runtime,
        assignment_event(
            "assignment.extension_granted",
            case_id,
            number,
            assignment_id,
            due_at=new_due.isoformat(),
            granted_by="city-org:supervisor",
            reason="需要现场勘测",
        ),
    )

    # The old due date passes quietly; the new clock climbs from its own due date.
    assert ladder.sweep(runtime, ONE_MONTH).total == 0
    assert ladder.sweep(runtime, new_due).fired == {"warning": 1, "overdue": 1}
    assert ladder.sweep(runtime, dt.datetime(2027, 3, 15, 9, 0, tzinfo=CST)).fired == {
        "unit-leader": 1
    }
    events = emitted(runtime, case_id)
    assert [d["step"] for _, d in events] == ["warning", "warning", "overdue", "unit-leader"]
    assert events[-1][1]["due_at"] == new_due.astimezone(dt.UTC).isoformat()


def test_an_extension_that_arrives_before_the_routing_still_counts(ladder_runtime):
    runtime = ladder_runtime
    case_id, number = new_case()
    assignment_id = str(uuid.uuid4())
    new_due = dt.datetime(2027, 2, 15, 9, 0, tzinfo=CST)
    consume(
        runtime,
        assignment_event(
            "assignment.extension_granted",
            case_id,
            number,
            assignment_id,
            due_at=new_due.isoformat(),
            granted_by="city-org:supervisor",
            reason="需要现场勘测",
        ),
    )
    consume(runtime, case_registered(case_id, number))
    consume(
        runtime,
        case_routed(case_id, number, routed_at=ROUTED, due_at=DUE, assignment_id=assignment_id),
    )

    assert ladder.sweep(runtime, DUE).total == 0
    assert ladder.sweep(runtime, new_due).fired == {"warning": 1, "overdue": 1}


@pytest.mark.parametrize("order", ["extension first", "resolution first"])
def test_an_extension_granted_before_the_resolution_counts_in_either_order(ladder_runtime, order):
    """Granted on day 25 to a month later, resolved on day 40: on time, whichever comes first."""
    runtime = ladder_runtime
    case_id, number, assignment_id = routed_case(runtime)
    new_due = DUE + dt.timedelta(days=30)
    resolved_at = ROUTED + dt.timedelta(days=40)
    extension = assignment_event(
        "assignment.extension_granted",
        case_id,
        number,
        assignment_id,
        due_at=new_due.isoformat(),
        granted_by="city-org:supervisor",
        reason="需要现场勘测",
        occurred_at=ROUTED + dt.timedelta(days=25),
    )
    resolution = assignment_event(
        "assignment.resolved",
        case_id,
        number,
        assignment_id,
        answer="已补发",
        occurred_at=resolved_at,
    )
    for event in [extension, resolution] if order == "extension first" else [resolution, extension]:
        consume(runtime, event)

    with runtime.sessions() as session:
        case = session.get(models.SupervisedCase, case_id)
        assert (case.status, case.due_at, case.resolved_at) == (
            models.RESOLVED,
            new_due,
            resolved_at,
        )
        assert session.scalar(select(func.count()).select_from(models.ClockTimer)) == 0
    assert ladder.sweep(runtime, THREE_MONTHS).total == 0


def test_an_extension_granted_after_the_resolution_moves_nothing(ladder_runtime):
    runtime = ladder_runtime
    case_id, number, assignment_id = routed_case(runtime)
    resolved_at = ROUTED + dt.timedelta(days=40)
    consume(
        runtime,
        assignment_event(
            "assignment.resolved", case_id, number, assignment_id, occurred_at=resolved_at
        ),
    )
    consume(
        runtime,
        assignment_event(
            "assignment.extension_granted",
            case_id,
            number,
            assignment_id,
            due_at=(DUE + dt.timedelta(days=60)).isoformat(),
            occurred_at=resolved_at + SECOND,
        ),
    )

    with runtime.sessions() as session:
        assert session.get(models.SupervisedCase, case_id).due_at == DUE


def test_resolution_stops_the_ladder(ladder_runtime):
    runtime = ladder_runtime
    case_id, number, assignment_id = routed_case(runtime)
    ladder.sweep(runtime, DUE)
    consume(
        runtime,
        assignment_event("assignment.resolved", case_id, number, assignment_id, answer="已补发"),
    )

    with runtime.sessions() as session:
        assert session.get(models.SupervisedCase, case_id).status == models.RESOLVED
        assert session.scalar(select(func.count()).select_from(models.ClockTimer)) == 0
    assert ladder.sweep(runtime, THREE_MONTHS).total == 0
    assert steps_of(runtime, case_id) == ["warning", "overdue"]


def test_a_resolution_of_a_transferred_assignment_leaves_the_clock(ladder_runtime):
    runtime = ladder_runtime
    case_id, number, _ = routed_case(runtime)
    consume(
        runtime,
        assignment_event("assignment.resolved", case_id, number, "an-older-assignment"),
    )

    assert ladder.sweep(runtime, DUE).fired == {"warning": 1, "overdue": 1}


def test_a_resolution_that_overtakes_its_own_routing_resolves_the_case(ladder_runtime):
    """After a transfer, the new assignment's answer may arrive before its case.routed."""
    runtime = ladder_runtime
    case_id, number, first = routed_case(runtime)
    second = str(uuid.uuid4())
    moved_at = ROUTED + dt.timedelta(days=1)
    resolved_at = ROUTED + dt.timedelta(days=3)
    consume(
        runtime,
        assignment_event(
            "assignment.transferred",
            case_id,
            number,
            first,
            to_unit="lw-chaoyang",
            occurred_at=moved_at,
        ),
    )
    consume(
        runtime,
        assignment_event(
            "assignment.resolved",
            case_id,
            number,
            second,
            unit="lw-chaoyang",
            answer="已补发",
            occurred_at=resolved_at,
        ),
    )
    consume(
        runtime,
        case_routed(
            case_id,
            number,
            unit="lw-chaoyang",
            routed_at=moved_at,
            due_at=DUE + dt.timedelta(days=1),
            assignment_id=second,
        ),
    )

    with runtime.sessions() as session:
        case = session.get(models.SupervisedCase, case_id)
        assert (case.status, case.assignment_id, case.responsible_unit) == (
            models.RESOLVED,
            second,
            "lw-chaoyang",
        )
        assert case.resolved_at == resolved_at
        assert session.scalar(select(func.count()).select_from(models.ClockTimer)) == 0
    assert ladder.sweep(runtime, THREE_MONTHS).total == 0


def test_a_co_operating_units_assignment_neither_moves_nor_stops_the_clock(ladder_runtime):
    runtime = ladder_runtime
    case_id, number, _ = routed_case(runtime)
    co_assignment = str(uuid.uuid4())
    consume(
        runtime,
        case_routed(
            case_id,
            number,
            unit="lw-chaoyang",
            role="co",
            routed_at=ROUTED + dt.timedelta(days=1),
            due_at=DUE + dt.timedelta(days=60),
            assignment_id=co_assignment,
        ),
    )
    consume(runtime, assignment_event("assignment.resolved", case_id, number, co_assignment))

    assert ladder.sweep(runtime, DUE).fired == {"warning": 1, "overdue": 1}
    with runtime.sessions() as session:
        case = session.get(models.SupervisedCase, case_id)
        assert (case.responsible_unit, case.status) == ("lw-buwen", models.ROUTED)
    assert [entry[1] for entry in timeline(runtime, case_id)].count("case.routed") == 2


def test_a_case_resolved_on_the_spot_never_starts_a_clock(ladder_runtime):
    runtime = ladder_runtime
    case_id, number = new_case()
    consume(runtime, case_registered(case_id, number, status="resolved_on_spot"))
    consume(runtime, case_resolved_on_spot(case_id, number))
    # Even a routing arriving afterwards (it should not happen) starts nothing.
    consume(runtime, case_routed(case_id, number, routed_at=ROUTED, due_at=DUE))

    assert ladder.sweep(runtime, THREE_MONTHS).total == 0
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(models.ClockTimer)) == 0


def test_a_newer_unit_revision_replaces_the_older_and_an_older_is_ignored(runtime):
    consume(runtime, unit_changed("lw-buwen", parent="lw", leader="甲", revision=2))
    consume(runtime, unit_changed("lw-buwen", parent="lw", leader="乙", revision=1))
    with runtime.sessions() as session:
        assert session.get(models.Unit, "lw-buwen").leader == "甲"
    consume(runtime, unit_changed("lw-buwen", parent="lw", leader="丙", revision=3))
    with runtime.sessions() as session:
        assert session.get(models.Unit, "lw-buwen").leader == "丙"


def test_month_arithmetic_keeps_to_the_city_calendar():
    assert ladder.add_months(dt.datetime(2026, 12, 15, 9, 0, tzinfo=CST), 1) == dt.datetime(
        2027, 1, 15, 9, 0, tzinfo=CST
    )
    assert ladder.add_months(dt.datetime(2027, 1, 31, 12, 0, tzinfo=CST), 1) == dt.datetime(
        2027, 2, 28, 12, 0, tzinfo=CST
    )
    # Midnight in the city is the previous day in UTC: the month is the city's.
    assert ladder.add_months(dt.datetime(2026, 11, 30, 16, 0, tzinfo=dt.UTC), 3) == dt.datetime(
        2027, 3, 1, 0, 0, tzinfo=CST
    )


def test_two_scheduler_replicas_fire_each_step_once_and_stop_on_sigterm(
    ladder_runtime, database_url
):
    """Clocks long due: two schedulers race for them; each step is published once."""
    long_ago = dt.datetime(2025, 1, 1, tzinfo=CST)
    cases = []
    for _ in range(10):
        case_id, number = new_case()
        consume(ladder_runtime, case_registered(case_id, number))
        consume(
            ladder_runtime,
            case_routed(
                case_id,
                number,
                routed_at=long_ago - dt.timedelta(days=30),
                due_at=long_ago,
                assignment_id=str(uuid.uuid4()),
            ),
        )
        cases.append(case_id)
    env = {**os.environ, "SUPERVISION_DATABASE_URL": database_url, "AMQP_URL": NO_BROKER}
    command = [
        str(Path(sys.executable).with_name("nighttalk")),
        "supervision",
        "scheduler",
        "--interval",
        "0.2",
        "--batch",
        "3",
    ]
    replicas = [subprocess.Popen(command, env=env, stderr=subprocess.PIPE) for _ in range(2)]
    started = [threading.Event() for _ in replicas]

    def drain(replica, event):
        # Read the replica's log to the end (a full pipe would block it); note its start.
        for line in replica.stderr:
            if b"scheduler started" in line:
                event.set()

    for replica, event in zip(replicas, started, strict=True):
        threading.Thread(target=drain, args=(replica, event), daemon=True).start()
    try:
        # Signals are only handled once a replica has started: wait for both.
        assert all(event.wait(timeout=120) for event in started)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with ladder_runtime.sessions() as session:
                fired = session.scalar(select(func.count()).select_from(models.LadderFiring))
            if fired >= 40:
                break
            time.sleep(0.2)  # waiting on other processes, not on the code under test
    finally:
        for replica in replicas:
            replica.send_signal(signal.SIGTERM)
        codes = [replica.wait(timeout=60) for replica in replicas]
    assert codes == [0, 0]
    for case_id in cases:
        assert steps_of(ladder_runtime, case_id) == [
            "warning",
            "overdue",
            "unit-leader",
            "city-leader",
        ]


def test_the_sweep_reads_due_timers_by_their_index(ladder_runtime):
    """With many clocks running, the sweep's query is answered from the fire_at index."""
    start = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    rows = [
        {
            "case_id": f"case-{n}",
            "step": "warning",
            "generation": 1,
            "fire_at": start + dt.timedelta(hours=n),
        }
        for n in range(20_000)
    ]
    engine = ladder_runtime.engine
    with engine.begin() as conn:
        conn.execute(models.ClockTimer.__table__.insert(), rows)
        conn.exec_driver_sql("ANALYZE")
    stmt = ladder.claim_statement(engine.dialect.name, start + dt.timedelta(hours=3), 500)
    compiled = stmt.compile(dialect=engine.dialect)
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            params = dict(compiled.params)
            plan = "\n".join(
                row[0] for row in conn.exec_driver_sql("EXPLAIN " + str(compiled), params)
            )
        else:
            params = tuple(
                compiled.params[name].replace(tzinfo=None)
                if isinstance(compiled.params[name], dt.datetime)
                else compiled.params[name]
                for name in compiled.positiontup
            )
            plan = "\n".join(
                row[-1]
                for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), params)
            )
    assert "ix_clock_timers_fire_at" in plan, plan
