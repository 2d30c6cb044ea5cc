"""Supervision's decisions applied while a partner acts on the same case, on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

import pytest
from sqlalchemy import create_engine, select, text

from eventbus import envelope
from routing import models, usecases
from servicekit.auth import mint

GUOKENG = {"Authorization": f"Bearer {mint('lw-guokeng', ['partner'], sub='lw-guokeng:clerk')}"}


def meeting_extends(data: dict, due_at: dt.datetime):
    return envelope.build(
        service="supervision",
        routing_key="meeting.decision_recorded",
        subject=data["case_id"],
        data={
            "case_id": data["case_id"],
            "case_number": data["case_number"],
            "month": "2026-12",
            "decision": "extend",
            "unit": None,
            "due_at": due_at.isoformat(),
            "note": "联席会议决定延期",
            "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
        },
    )


def grants(runtime) -> list[dict]:
    """Return the extensions routing announced, oldest first."""
    table = models.metadata.tables["outbox"]
    with runtime.engine.connect() as conn:
        rows = conn.execute(
            select(table.c.body)
            .where(
                table.c.exchange == "nighttalk.events",
                table.c.routing_key == "assignment.extension_granted",
            )
            .order_by(table.c.position)
        )
        return [json.loads(row.body) for row in rows]


@pytest.fixture
def overlapping(database, db_backend, monkeypatch):
    """Return a function running two actions on one case whose transactions overlap.

    The first runs in a thread and stops once it has logged the action named, its
    transaction open, until the second is done or waits on it: a consumer thread
    and a partner's request (or another consumer) at the same moment. Returns the
    second's result.
    """
    if db_backend == "sqlite":
        pytest.skip("SQLite writes one transaction at a time: nothing overlaps")
    engine = create_engine(database)

    def another_waits() -> bool:
        with engine.connect() as conn:
            return bool(
                conn.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                )
            )

    original = usecases._log

    def run(first, second, *, holds_after: tuple[str, str]):
        held, second_done = threading.Event(), threading.Event()

        def log_then_hold(session, assignment, action, by, now, note):
            original(session, assignment, action, by, now, note)
            if (action, by) == holds_after and not held.is_set():
                held.set()
                for _ in range(400):  # at most 20 s: the second is on its way
                    if second_done.is_set() or another_waits():
                        break
                    time.sleep(0.05)

        monkeypatch.setattr(usecases, "_log", log_then_hold)
        failures = []

        def in_thread():
            try:
                first()
            except Exception as exc:  # reported by the test, not lost in the thread
                failures.append(exc)

        thread = threading.Thread(target=in_thread)
        thread.start()
        assert held.wait(20)
        result = second()
        second_done.set()
        thread.join()
        assert failures == []
        return result

    yield run
    engine.dispose()


@pytest.fixture
def routed_case(runtime, deliver, case_data, case_registered):
    """Route one case to 郭坑镇; return its data, assignment id and due date."""
    data = case_data()
    deliver(case_registered(data))
    with runtime.sessions() as session:
        assignment = session.scalars(
            select(models.Assignment).where(models.Assignment.case_id == data["case_id"])
        ).one()
        return data, assignment.id, assignment.due_at


def test_a_meeting_s_extension_and_a_partner_s_at_once_both_stand(
    client, runtime, deliver, routed_case, overlapping
):
    data, assignment_id, due = routed_case

    answer = overlapping(
        lambda: deliver(meeting_extends(data, due + dt.timedelta(days=10))),
        lambda: client.post(
            f"/v1/assignments/{assignment_id}/extension",
            headers=GUOKENG,
            json={"days": 15, "reason": "待鉴定"},
        ),
        holds_after=("extension_granted", usecases.MEETING),
    )

    assert answer.status_code == 200, answer.get_json()
    with runtime.sessions() as session:
        assignment = session.get(models.Assignment, assignment_id)
    announced = [dt.datetime.fromisoformat(body["due_at"]) for body in grants(runtime)]
    # Every extension announced is counted, and the due date is the last one announced:
    # neither decision overwrote the other with what it read before the other committed.
    assert assignment.extensions == len(announced)
    assert announced == sorted(announced) and assignment.due_at == announced[-1]


def test_a_meeting_s_extension_waiting_on_a_transfer_extends_the_new_lead(
    client, runtime, deliver, routed_case, overlapping
):
    data, assignment_id, due = routed_case
    later = due + dt.timedelta(days=10)

    overlapping(
        lambda: client.post(
            f"/v1/assignments/{assignment_id}/transfer",
            headers=GUOKENG,
            json={"to_unit": "lw-buwen", "reason": "属步文镇"},
        ),
        lambda: deliver(meeting_extends(data, later)),
        holds_after=("transferred", "lw-guokeng:clerk"),
    )

    with runtime.sessions() as session:
        new = usecases.lead_assignment(session, data["case_id"])
        old = session.get(models.Assignment, assignment_id)
    assert (old.status, new.unit) == ("transferred", "lw-buwen")
    # The decision reached the case where the transfer left it, not the assignment it left.
    assert (new.due_at, new.extensions) == (later, 1)
    assert [body["assignment_id"] for body in grants(runtime)] == [new.id]
