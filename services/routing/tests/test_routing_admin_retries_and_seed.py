"""The admin's directory and rules API: what is asked is what is stored, and retries are safe."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from routing import admin, models
from servicekit.auth import mint

NAMED_UNITS = Path(__file__).parent / "data" / "units_named.json"


def bearer(unit: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(unit, list(roles), sub=f'{unit}:clerk')}"}


ADMIN = bearer("city-org", "admin")


def test_post_unit_keeps_amqp(client):
    response = client.post(
        "/v1/units",
        headers={**ADMIN, "Idempotency-Key": "new-town"},
        json={
            "code": "lw-newtown",
            "name": "新镇",
            "level": "township",
            "parent": "lw",
            "amqp": True,
        },
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["amqp"] is True
    assert client.get("/v1/units/lw-newtown", headers=ADMIN).get_json()["amqp"] is True


def seed_file(tmp_path, **changes) -> str:
    """Write the named units' directory with some units changed; return its path."""
    raw = json.loads(NAMED_UNITS.read_text(encoding="utf-8"))
    for unit in raw["units"]:
        unit.update(changes.get(unit["code"], {}))
    path = tmp_path / "units.json"
    path.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    return str(path)


def directory_state(runtime) -> dict[str, tuple]:
    with runtime.sessions() as session:
        units = session.scalars(select(models.Unit)).all()
        return {u.code: (u.name, u.active, u.revision) for u in units}


def test_seed_refuses_to_retire_the_default_unit(
    runtime, seeding, tmp_path, deliver, case_data, case_registered
):
    before = directory_state(runtime)
    path = seed_file(
        tmp_path,
        **{"city-gov-office": {"active": False}, "lw-buwen": {"name": "步文镇（新）"}},
    )

    result = seeding(path)

    assert result.exit_code != 0
    assert "'city-gov-office' is the default unit" in result.output
    assert directory_state(runtime) == before  # the other change was not made either
    # Unclaimed cases still reach the default unit.
    data = case_data(disposition={"action": "route"})
    deliver(case_registered(data))
    with runtime.sessions() as session:
        [assignment] = session.scalars(select(models.Assignment)).all()
        assert assignment.unit == "city-gov-office"


def test_seed_refuses_to_retire_a_unit_a_rule_names(client, runtime, seeding, tmp_path):
    response = client.post(
        "/v1/rules", headers=ADMIN, json={"category": "land", "area": "lw", "unit": "lw-org"}
    )
    assert response.status_code == 201, response.get_json()
    before = directory_state(runtime)

    result = seeding(seed_file(tmp_path, **{"lw-org": {"active": False}}))

    assert result.exit_code != 0
    assert "routing rules name 'lw-org'" in result.output
    assert response.get_json()["rule_id"] in result.output
    assert directory_state(runtime) == before


def waits_on_a_lock(engine) -> bool:
    """Return whether a session waits for a lock in the engine's database.

    Not any ungranted lock on the server: another suite's, in its own database, would
    let the first request go on early. Nor pg_locks' ``database``: the wait on another
    transaction's unique key is a ``transactionid`` lock, which has none.
    """
    with engine.connect() as conn:
        return bool(
            conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        )


@pytest.fixture
def overlapping(app, database, db_backend, monkeypatch):
    """Return a function POSTing two requests whose transactions overlap; their answers.

    The first request stops after writing what it creates, its transaction open, until
    the second waits on it (PostgreSQL's unique index makes it wait), as a client's
    retry sent while the first request is still at work does.
    """
    if db_backend == "sqlite":
        pytest.skip("SQLite writes one transaction at a time: no two requests overlap")
    engine = create_engine(database)

    def run(name: str, path: str, first: tuple[dict, dict], second: tuple[dict, dict]):
        original = getattr(admin, name)
        started = threading.Event()

        def first_holds(uow, data):
            made = original(uow, data)
            if not started.is_set():
                started.set()
                for _ in range(400):  # at most 20 s: the second request is on its way
                    if waits_on_a_lock(engine):
                        break
                    time.sleep(0.05)
            return made

        monkeypatch.setattr(admin, name, first_holds)
        answers = {}

        def post(which, headers, body):
            response = app.test_client().post(path, headers=headers, json=body)
            answers[which] = (response.status_code, response.get_json())

        thread = threading.Thread(target=post, args=("first", *first))
        thread.start()
        assert started.wait(20)
        post("second", *second)
        thread.join()
        return answers["first"], answers["second"]

    yield run
    engine.dispose()


RULE = {"category": "land", "area": "lw", "unit": "lw-org"}
UNIT = {"code": "lw-newtown", "name": "新镇", "level": "township", "parent": "lw"}


@pytest.mark.parametrize(
    "path, name, body", [("/v1/rules", "add_rule", RULE), ("/v1/units", "add_unit", UNIT)]
)
def test_a_retry_while_the_first_request_is_at_work_gets_its_answer(
    client, overlapping, path, name, body
):
    headers = {**ADMIN, "Idempotency-Key": "retry-1"}
    first, second = overlapping(name, path, (headers, body), (headers, body))
    assert first[0] == 201, first
    assert second == first
    listed = client.get(path, headers=ADMIN).get_json()
    assert listed["total"] == (1 if name == "add_rule" else 35)


@pytest.mark.parametrize(
    "path, name, body, says",
    [
        ("/v1/rules", "add_rule", RULE, "a rule for (land, lw) exists"),
        ("/v1/units", "add_unit", UNIT, "unit 'lw-newtown' exists"),
    ],
)
def test_the_same_thing_created_at_once_under_two_keys_is_a_conflict(
    overlapping, path, name, body, says
):
    first, second = overlapping(
        name,
        path,
        ({**ADMIN, "Idempotency-Key": "desk-1"}, body),
        ({**ADMIN, "Idempotency-Key": "desk-2"}, body),
    )
    assert first[0] == 201, first
    assert second[0] == 409, second
    assert says in second[1]["message"]
    if name == "add_rule":
        assert first[1]["rule_id"] in second[1]["message"]


@contextlib.contextmanager
def waiting_on_a_key(url: str):
    """Hold a new key uncommitted in the database while another session inserts it too.

    The second session waits for the first's transaction, as the second of two
    overlapping requests does on the unique index.
    """
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS lock_probe (k integer PRIMARY KEY)"))
    holder = engine.connect()
    holder.execute(text("INSERT INTO lock_probe VALUES (1)"))

    def insert_too():
        with engine.connect() as conn:
            conn.execute(text("INSERT INTO lock_probe VALUES (1)"))

    waiter = threading.Thread(target=insert_too)
    waiter.start()
    try:
        for _ in range(400):  # at most 20 s: the second session is on its way
            with engine.connect() as conn:
                waiting = conn.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                        "current_database() AND query LIKE 'INSERT INTO lock_probe%' "
                        "AND wait_event_type = 'Lock'"
                    )
                )
            if waiting:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the second session never waited")
        yield
    finally:
        holder.rollback()
        holder.close()
        waiter.join()
        engine.dispose()


def test_only_a_wait_in_the_tests_own_database_lets_the_first_request_go_on(
    database, make_database, db_backend
):
    # Another suite's waits, in its own database on the same server, must not count.
    if db_backend == "sqlite":
        pytest.skip("no lock waits to tell apart on SQLite")
    own = create_engine(database)
    try:
        with waiting_on_a_key(make_database("routing_elsewhere")):
            assert not waits_on_a_lock(own)
        with waiting_on_a_key(database):
            assert waits_on_a_lock(own)
    finally:
        own.dispose()
