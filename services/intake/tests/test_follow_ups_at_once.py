"""Two desks following up the same cases at once: both registrations are kept."""

from __future__ import annotations

import copy
import threading

import pytest
from sqlalchemy import create_engine, text

from eventbus import testing

# The trigger's wait: the test holds this advisory lock until both desks are inside.
GATE = 4242


def _waiting_sessions(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        ).scalar_one()


def test_two_desks_following_up_two_cases_in_opposite_order_both_register(
    app, client, bearer, visit_body, database_url, db_backend
):
    """Each desk counts its later visit on both cases; neither deadlocks the other."""
    if db_backend == "sqlite":
        pytest.skip("SQLite writes one transaction at a time: no two desks hold rows at once")
    body = copy.deepcopy(visit_body)
    body["channel"] = "daily"
    body["issues"] = body["issues"][1:]
    made = client.post("/v1/visits", json=body, headers=bearer()).get_json()["cases"]
    a, b = (c["case_number"] for c in made)

    engine = create_engine(database_url)
    gate = engine.connect()
    try:
        with engine.begin() as conn:
            # Each desk stops on the first case it counts (its row locked) until both are
            # there: the two desks then overlap as two busy desks can.
            conn.execute(
                text(
                    "CREATE FUNCTION wait_at_gate() RETURNS trigger LANGUAGE plpgsql AS"
                    f" $$ BEGIN PERFORM pg_advisory_xact_lock_shared({GATE}); RETURN NEW; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER wait_at_gate BEFORE UPDATE ON cases"
                    " FOR EACH ROW EXECUTE FUNCTION wait_at_gate()"
                )
            )
        gate.execute(text(f"SELECT pg_advisory_lock({GATE})"))
        answers = {}

        def desk(name, follow_ups):
            visit = {k: v for k, v in body.items() if k != "issues"}
            visit["visitor"] = {"name": "王五" if name == "one" else "赵六"}
            visit["follow_ups"] = follow_ups
            answers[name] = app.test_client().post("/v1/visits", json=visit, headers=bearer())

        desks = [
            threading.Thread(target=desk, args=("one", [a, b])),
            threading.Thread(target=desk, args=("two", [b, a])),
        ]
        for d in desks:
            d.start()
        try:
            testing.eventually(lambda: _waiting_sessions(engine) >= 2, "both desks waiting")
        finally:
            gate.execute(text(f"SELECT pg_advisory_unlock({GATE})"))
            gate.commit()
            for d in desks:
                d.join(30)
    finally:
        gate.close()
        engine.dispose()

    assert [answers[n].status_code for n in ("one", "two")] == [201, 201], {
        n: r.get_json() for n, r in answers.items()
    }
    for number in (a, b):
        shown = client.get(f"/v1/cases/{number}", headers=bearer()).get_json()
        assert shown["repeat_count"] == 2
