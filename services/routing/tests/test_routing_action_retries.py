"""An assignment action retried with its Idempotency-Key gets the first answer, does nothing.

A partner (or supervisor) whose POST timed out sends it again with the same key: the
retry must not store a second progress report nor publish a second event (DESIGN §5),
and an action the state guards (accept, resolve...) must answer the retry with the first
200, not with the 409 a second action gets.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import create_engine, func, select, text

from routing import models, usecases
from servicekit.auth import mint


def bearer(unit: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(unit, list(roles), sub=f'{unit}:clerk')}"}


GUOKENG = bearer("lw-guokeng", "partner")
BUWEN = bearer("lw-buwen", "partner")
LW_SUPERVISOR = bearer("lw", "supervisor")


def keyed(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


def state(runtime) -> tuple:
    """Return what an action changes: the events written, the history, the assignments."""
    outbox = models.metadata.tables["outbox"]
    with runtime.sessions() as session:
        written = session.scalar(select(func.count()).select_from(outbox))
        history = session.scalar(select(func.count()).select_from(models.AssignmentAction))
        assignments = session.execute(
            select(
                models.Assignment.id,
                models.Assignment.unit,
                models.Assignment.status,
                models.Assignment.due_at,
                models.Assignment.extensions,
                models.Assignment.extension_days,
                models.Assignment.superseded_by,
            ).order_by(models.Assignment.id)
        ).all()
    return written, history, assignments


def published(runtime, routing_key: str) -> int:
    outbox = models.metadata.tables["outbox"]
    with runtime.sessions() as session:
        return session.scalar(
            select(func.count())
            .select_from(outbox)
            .where(outbox.c.exchange == "nighttalk.events", outbox.c.routing_key == routing_key)
        )


def accepted(client, signed_over) -> str:
    assignment_id = signed_over()
    response = client.post(f"/v1/assignments/{assignment_id}/accept", headers=GUOKENG)
    assert response.status_code == 200, response.get_json()
    return assignment_id


def pending_extension(client, signed_over) -> str:
    assignment_id = signed_over()
    for days in (10, 5):  # the first granted by policy, the second awaits lw
        response = client.post(
            f"/v1/assignments/{assignment_id}/extension",
            headers=GUOKENG,
            json={"days": days, "reason": "待鉴定"},
        )
        assert response.status_code == 200, response.get_json()
    return assignment_id


def in_arbitration(client, signed_over, monkeypatch) -> str:
    monkeypatch.setenv("ROUTING_MAX_MOVES", "0")
    assignment_id = signed_over()
    response = client.post(
        f"/v1/assignments/{assignment_id}/return", headers=GUOKENG, json={"reason": "非我镇"}
    )
    assert response.get_json()["status"] == "arbitration", response.get_json()
    return assignment_id


# action -> (how to get an assignment ready for it, who acts, the body, the status)
ACTIONS = {
    "accept": (lambda c, s, m: s(), GUOKENG, None, 200),
    "return": (lambda c, s, m: s(), GUOKENG, {"reason": "不归我管"}, 200),
    "transfer": (lambda c, s, m: s(), GUOKENG, {"to_unit": "lw-buwen", "reason": "属步文"}, 200),
    "progress": (lambda c, s, m: accepted(c, s), GUOKENG, {"note": "已约谈医保站"}, 200),
    "resolve": (lambda c, s, m: accepted(c, s), GUOKENG, {"answer": "已报销"}, 200),
    "extension": (lambda c, s, m: s(), GUOKENG, {"days": 10, "reason": "待鉴定"}, 200),
    "extension/decision": (
        lambda c, s, m: pending_extension(c, s),
        LW_SUPERVISOR,
        {"grant": True, "reason": "同意"},
        200,
    ),
    "arbitration": (
        in_arbitration,
        LW_SUPERVISOR,
        {"unit": "lw-guokeng", "reason": "属郭坑镇"},
        200,
    ),
    "co-handlers": (lambda c, s, m: s(), GUOKENG, {"unit": "lw-buwen", "reason": "医保站"}, 201),
}


@pytest.mark.parametrize("action", list(ACTIONS))
def test_a_retry_with_the_same_key_gets_the_first_answer_and_does_nothing(
    client, runtime, signed_over, monkeypatch, action
):
    ready, caller, body, status = ACTIONS[action]
    assignment_id = ready(client, signed_over, monkeypatch)
    path = f"/v1/assignments/{assignment_id}/{action}"
    headers = keyed(caller, f"{action}-1")

    first = client.post(path, headers=headers, json=body)
    assert first.status_code == status, first.get_json()
    after_first = state(runtime)
    again = client.post(path, headers=headers, json=body)

    assert again.status_code == status, again.get_json()
    assert again.get_json() == first.get_json()
    assert state(runtime) == after_first


def test_a_retried_progress_report_is_stored_and_published_once(client, runtime, signed_over):
    # The audit's case: the partner POSTed its report twice with Idempotency-Key p-1.
    assignment_id = accepted(client, signed_over)
    path = f"/v1/assignments/{assignment_id}/progress"
    for _ in range(2):
        response = client.post(path, headers=keyed(GUOKENG, "p-1"), json={"note": "已约谈"})
        assert response.status_code == 200
    assert published(runtime, "assignment.progressed") == 1
    with runtime.sessions() as session:
        reports = session.scalars(
            select(models.AssignmentAction).where(models.AssignmentAction.action == "progressed")
        ).all()
    assert [report.text for report in reports] == ["已约谈"]


def test_the_same_key_for_another_request_is_refused_and_does_nothing(client, runtime, signed_over):
    assignment_id = accepted(client, signed_over)
    other_id = accepted(client, signed_over)
    headers = keyed(GUOKENG, "p-2")
    path = f"/v1/assignments/{assignment_id}/progress"
    assert client.post(path, headers=headers, json={"note": "一"}).status_code == 200
    before = state(runtime)
    for other_path, body in (
        (path, {"note": "二"}),  # another body
        (f"/v1/assignments/{other_id}/progress", {"note": "一"}),  # another assignment
        (f"/v1/assignments/{assignment_id}/resolve", {"answer": "一"}),  # another action
    ):
        response = client.post(other_path, headers=headers, json=body)
        assert response.status_code == 422, (other_path, response.get_json())
        assert list(response.get_json()["errors"]["headers"]) == ["Idempotency-Key"]
    assert state(runtime) == before


def test_another_unit_s_key_is_its_own(client, runtime, signed_over):
    mine = signed_over()
    theirs = signed_over(disposition={"action": "sign_over", "unit": "lw-buwen"})
    for caller, assignment_id in ((GUOKENG, mine), (BUWEN, theirs)):
        response = client.post(
            f"/v1/assignments/{assignment_id}/accept", headers=keyed(caller, "accept-1")
        )
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["assignment_id"] == assignment_id
    assert published(runtime, "assignment.accepted") == 2


def test_a_refusal_is_not_kept_for_the_key(client, runtime, signed_over):
    assignment_id = signed_over()
    path = f"/v1/assignments/{assignment_id}/progress"
    headers = keyed(GUOKENG, "p-3")
    early = client.post(path, headers=headers, json={"note": "在办"})
    assert early.status_code == 409  # not accepted yet
    client.post(f"/v1/assignments/{assignment_id}/accept", headers=GUOKENG)
    response = client.post(path, headers=headers, json={"note": "在办"})
    assert response.status_code == 200, response.get_json()
    assert published(runtime, "assignment.progressed") == 1


def test_without_a_key_each_post_is_its_own(client, runtime, signed_over):
    assignment_id = accepted(client, signed_over)
    for _ in range(2):
        response = client.post(
            f"/v1/assignments/{assignment_id}/progress", headers=GUOKENG, json={"note": "在办"}
        )
        assert response.status_code == 200
    assert published(runtime, "assignment.progressed") == 2
    again = client.post(f"/v1/assignments/{assignment_id}/accept", headers=GUOKENG)
    assert again.status_code == 409


@pytest.mark.parametrize("key", ["", "é", "a b", "x" * 201])
def test_a_malformed_key_is_refused_naming_the_header(client, runtime, signed_over, key):
    assignment_id = signed_over()
    before = state(runtime)
    response = client.post(
        f"/v1/assignments/{assignment_id}/accept",
        headers={**GUOKENG, "Idempotency-Key": key.encode().decode("latin-1")},
    )
    assert response.status_code == 422, response.get_json()
    assert "Idempotency-Key" in response.get_json()["errors"]["headers"]
    assert state(runtime) == before


def test_every_action_declares_the_header(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    for action in ACTIONS:
        path = paths[f"/v1/assignments/{{assignment_id}}/{action}"]
        parameters = path.get("parameters", []) + path["post"].get("parameters", [])
        assert {"in": "header", "name": "Idempotency-Key"} in [
            {"in": p["in"], "name": p["name"]} for p in parameters
        ], action
        assert "Idempotency-Key" in path["post"]["description"], action


# -- a retry while the first is still at work (PostgreSQL) -----------------------------------


@pytest.fixture
def first_held(database, db_backend, monkeypatch):
    """Return a function running ``first`` in a thread, held inside its transaction once
    it has logged ``action``, until ``second`` (run here) waits on its lock or is done."""
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

    def run(first, second, *, action: str):
        held, second_done = threading.Event(), threading.Event()

        def log_then_hold(session, assignment, logged, by, now, note):
            original(session, assignment, logged, by, now, note)
            if logged == action and not held.is_set():
                held.set()
                for _ in range(400):  # at most 20 s: the second is on its way
                    if second_done.is_set() or another_waits():
                        break
                    time.sleep(0.05)

        monkeypatch.setattr(usecases, "_log", log_then_hold)
        results, failures = [], []

        def in_thread():
            try:
                results.append(first())
            except Exception as exc:  # reported by the test, not lost in the thread
                failures.append(exc)

        thread = threading.Thread(target=in_thread)
        thread.start()
        assert held.wait(20)
        answer = second()
        second_done.set()
        thread.join()
        assert failures == []
        return results[0], answer

    yield run
    engine.dispose()


@pytest.mark.parametrize(
    ("action", "logged", "body"),
    [("accept", "accepted", None), ("progress", "progressed", {"note": "在办"})],
)
def test_a_retry_racing_the_first_request_gets_its_answer(
    app, runtime, signed_over, first_held, action, logged, body
):
    assignment_id = signed_over()
    if action != "accept":
        app.test_client().post(f"/v1/assignments/{assignment_id}/accept", headers=GUOKENG)
    path = f"/v1/assignments/{assignment_id}/{action}"
    headers = keyed(GUOKENG, f"{action}-race")

    def send():
        return app.test_client().post(path, headers=headers, json=body)

    first, retry = first_held(send, send, action=logged)

    assert first.status_code == retry.status_code == 200, (first.get_json(), retry.get_json())
    assert retry.get_json() == first.get_json()
    assert published(runtime, f"assignment.{logged}") == 1
