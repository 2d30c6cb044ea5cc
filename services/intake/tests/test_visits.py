"""Registering visits at the reception desk: cases, numbers, events, idempotency, PII."""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import re
import threading

import pytest
from sqlalchemy import create_engine, event, text

from eventbus import testing, topology
from eventbus.connection import connect
from intake import usecases

PHONE, ID_NUMBER, NAME = "13905961234", "350602195001011234", "林河清"


def _outbox(database_url):
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(
                text("SELECT routing_key, headers, body FROM outbox ORDER BY position")
            ).all()
    finally:
        engine.dispose()


def test_three_issues_make_three_cases_numbers_and_events(client, bearer, visit_body, database_url):
    r = client.post("/v1/visits", json=visit_body, headers=bearer())
    assert r.status_code == 201, r.get_json()
    cases = r.get_json()["cases"]
    assert [c["case_number"] for c in cases] == [
        "city-org-20261115-0001",
        "city-org-20261115-0002",
        "city-org-20261115-0003",
    ]
    assert [c["status"] for c in cases] == ["resolved_on_spot", "open", "open"]
    assert cases[0]["due_at"] is None
    due = dt.datetime.fromisoformat(cases[1]["due_at"])
    now = dt.datetime.now(dt.UTC)
    assert 27 <= (due - now).days <= 31
    keys = [row.routing_key for row in _outbox(database_url)]
    assert keys.count("case.registered") == 3
    assert keys.count("case.resolved_on_spot") == 1
    assert keys.count("visit.registered") == 1
    assert keys.count("visit.contact_recorded") == 1


def test_case_numbers_follow_the_local_day_and_unit(client, bearer, visit_body):
    body = copy.deepcopy(visit_body)
    body["received_at"] = "2026-11-15T23:30:00+08:00"  # still the 15th in Zhangzhou
    body["channel"] = "daily"  # past the night-talk session: the complaint centre's desk
    body["issues"] = body["issues"][:1]
    first = client.post("/v1/visits", json=body, headers=bearer()).get_json()
    second = client.post("/v1/visits", json=body, headers=bearer()).get_json()
    other = client.post("/v1/visits", json=body, headers=bearer("lw-org")).get_json()
    assert first["cases"][0]["case_number"] == "city-org-20261115-0001"
    assert second["cases"][0]["case_number"] == "city-org-20261115-0002"
    assert other["cases"][0]["case_number"] == "lw-org-20261115-0001"


def _one_daily_issue(visit_body):
    body = copy.deepcopy(visit_body)
    body["channel"] = "daily"
    body["issues"] = body["issues"][1:2]
    return body


def _desks(app, body, headers):
    """Return the answers by desk and two unstarted threads, "first" and "second", each
    registering the visit through a client of its own (a cursor hook tells them apart)."""
    answers = {}

    def register(name):
        answers[name] = app.test_client().post("/v1/visits", json=body, headers=headers)

    desks = [threading.Thread(target=register, args=(n,), name=n) for n in ("first", "second")]
    return answers, *desks


def _wait_for(*desks):
    # A desk never started (an assertion stopped the test before) has nothing to wait for.
    for desk in desks:
        if desk.ident is not None:
            desk.join(30)


def test_a_units_registration_does_not_wait_for_another_still_in_its_transaction(
    app, runtime, bearer, visit_body, db_backend
):
    """Two desks of one unit: the second is not held up by the first's open transaction."""
    if db_backend == "sqlite":
        pytest.skip("SQLite writes one transaction at a time: every writer waits its turn")
    body = _one_daily_issue(visit_body)
    first_inside, release = threading.Event(), threading.Event()

    def hold_the_first(_conn, _cursor, statement, *_args):
        # The first registration stops inside its transaction, its number taken.
        if threading.current_thread().name == "first" and statement.startswith("INSERT INTO cases"):
            first_inside.set()
            release.wait(30)

    answers, first, second = _desks(app, body, bearer())
    event.listen(runtime.engine, "before_cursor_execute", hold_the_first)
    try:
        first.start()
        assert first_inside.wait(30), "the first registration never reached its cases"
        second.start()
        second.join(20)
        finished_while_first_open = not second.is_alive()
    finally:
        release.set()
        _wait_for(first, second)
        event.remove(runtime.engine, "before_cursor_execute", hold_the_first)
    assert finished_while_first_open, "the second registration waited for the first's commit"
    assert answers["first"].status_code == answers["second"].status_code == 201
    assert answers["first"].get_json()["cases"][0]["case_number"].endswith("-0001")
    assert answers["second"].get_json()["cases"][0]["case_number"].endswith("-0002")


def test_numbers_taken_by_a_failed_registration_stay_unused_on_postgresql(
    client, runtime, bearer, visit_body, db_backend
):
    """PostgreSQL commits numbers on their own (a gap where a registration failed);
    SQLite takes them in the registration's transaction (no gap)."""
    day = dt.date(2026, 11, 15)
    with runtime.sessions() as failed:
        taken = usecases.hand_out_case_numbers(failed, "city-org", day, 2)
        assert taken == ["city-org-20261115-0001", "city-org-20261115-0002"]
        failed.rollback()  # the registration fails after taking them
    body = _one_daily_issue(visit_body)
    number = client.post("/v1/visits", json=body, headers=bearer()).get_json()["cases"][0]
    expected = "0003" if db_backend == "postgresql" else "0001"
    assert number["case_number"] == f"city-org-20261115-{expected}"


def test_two_desks_registering_repeats_of_one_case_at_once_both_count(
    client, app, runtime, bearer, visit_body, db_backend
):
    """The second desk read the case's count before the first committed its own repeat."""
    if db_backend == "sqlite":
        pytest.skip("SQLite: a registration's first write (its numbers) waits for the other")
    body = _one_daily_issue(visit_body)
    original = client.post("/v1/visits", json=body, headers=bearer()).get_json()["cases"][0]
    first_inside, release = threading.Event(), threading.Event()
    second_has_read, first_committed = threading.Event(), threading.Event()

    def interleave(_conn, _cursor, statement, *_args):
        name = threading.current_thread().name
        if name == "first" and statement.startswith("INSERT INTO cases"):
            first_inside.set()
            release.wait(30)
        if name == "second" and statement.startswith("UPDATE cases"):
            # Found the same earlier case, about to count its repeat.
            second_has_read.set()
            first_committed.wait(30)

    answers, first, second = _desks(app, body, bearer())
    event.listen(runtime.engine, "before_cursor_execute", interleave)
    try:
        first.start()
        assert first_inside.wait(30), "the first registration never reached its cases"
        second.start()
        assert second_has_read.wait(30), "the second registration never counted a repeat"
        release.set()
        first.join(30)
        first_committed.set()
        second.join(30)
    finally:
        release.set()
        first_committed.set()
        _wait_for(first, second)
        event.remove(runtime.engine, "before_cursor_execute", interleave)
    assert answers["first"].status_code == answers["second"].status_code == 201
    for answer in answers.values():
        assert answer.get_json()["cases"][0]["repeat_of"] == original["case_id"]
    shown = client.get(f"/v1/cases/{original['case_number']}", headers=bearer()).get_json()
    assert shown["repeat_count"] == 2


def test_a_retry_with_the_same_key_returns_the_first_answer(
    client, bearer, visit_body, database_url
):
    headers = {**bearer(), "Idempotency-Key": "desk-3-visit-17"}
    first = client.post("/v1/visits", json=visit_body, headers=headers)
    again = client.post("/v1/visits", json=visit_body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.get_json() == again.get_json()
    assert len(_outbox(database_url)) == 6  # the events of one registration only
    changed = copy.deepcopy(visit_body)
    changed["headcount"] = 6
    conflict = client.post("/v1/visits", json=changed, headers=headers)
    assert conflict.status_code == 422
    assert "Idempotency-Key" in conflict.get_json()["errors"]["headers"]


def test_a_batch_with_only_a_follow_up_opens_no_case(client, bearer, visit_body, database_url):
    number = client.post("/v1/visits", json=visit_body, headers=bearer()).get_json()["cases"][1][
        "case_number"
    ]
    body = {k: v for k, v in visit_body.items() if k != "issues"}
    body["follow_ups"] = [number]
    r = client.post("/v1/visits", json=body, headers=bearer())
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["cases"] == []
    assert r.get_json()["follow_ups"][0]["case_number"] == number
    keys = [row.routing_key for row in _outbox(database_url)]
    assert keys.count("visit.followed_up") == 1
    unknown = client.post(
        "/v1/visits", json={**body, "follow_ups": ["city-org-20200101-0009"]}, headers=bearer()
    )
    assert unknown.status_code == 422
    assert "follow_ups" in unknown.get_json()["errors"]["json"]


def test_the_same_visitor_with_the_same_open_category_is_a_repeat(client, bearer, visit_body):
    first = client.post("/v1/visits", json=visit_body, headers=bearer()).get_json()
    again = client.post("/v1/visits", json=visit_body, headers=bearer()).get_json()
    assert again["cases"][1]["repeat_of"] == first["cases"][1]["case_id"]
    assert again["cases"][2]["repeat_of"] == first["cases"][2]["case_id"]
    assert again["cases"][0]["repeat_of"] is None  # resolved on the spot: nothing open


def test_two_issues_of_one_category_in_one_visit_are_not_repeats_of_each_other(
    client, bearer, visit_body
):
    """A repeat is a later visit about an open case, not a second issue of the same visit."""
    second_issue = copy.deepcopy(visit_body["issues"][1])
    second_issue["summary"] = "另一笔医药费也无法报销"
    body = {**visit_body, "issues": [visit_body["issues"][1], second_issue]}
    first = client.post("/v1/visits", json=body, headers=bearer()).get_json()
    assert [c["repeat_of"] for c in first["cases"]] == [None, None]
    # Raised twice again in a later visit: both issues are repeats of the latest open case,
    # which counts one later visit (repeat_count counts visits, not issues).
    again = client.post("/v1/visits", json=body, headers=bearer()).get_json()
    latest = first["cases"][1]
    assert [c["repeat_of"] for c in again["cases"]] == [latest["case_id"]] * 2
    shown = client.get(f"/v1/cases/{latest['case_number']}", headers=bearer()).get_json()
    assert shown["repeat_count"] == 1


def test_pii_is_masked_in_responses_and_absent_from_logs_and_case_events(
    client, bearer, visit_body, database_url, caplog
):
    caplog.set_level(logging.DEBUG)
    created = client.post("/v1/visits", json=visit_body, headers=bearer()).get_json()
    visit = client.get(f"/v1/visits/{created['visit_id']}", headers=bearer()).get_json()
    assert visit["visitor"] == {
        "name": "林*清",
        "phone": "139****1234",
        "id_number": "**************1234",
        "address": "郭坑***",
    }
    case = client.get(f"/v1/cases/{created['cases'][1]['case_number']}", headers=bearer())
    everything = json.dumps([visit, case.get_json()], ensure_ascii=False)
    for secret in (PHONE, ID_NUMBER, NAME):
        assert secret not in everything
        assert secret not in caplog.text
    for row in _outbox(database_url):
        body = bytes(row.body).decode()
        decoded = json.loads(body)
        flat = json.dumps(decoded, ensure_ascii=False) + json.dumps(row.headers)
        assert ID_NUMBER not in flat  # never leaves intake
        assert PHONE not in flat and NAME not in flat  # the contact leaves sealed
    engine = create_engine(database_url)
    with engine.connect() as conn:
        stored = json.dumps(
            [list(map(str, r)) for r in conn.execute(text("SELECT * FROM visits"))],
            ensure_ascii=False,
        )
    engine.dispose()
    for secret in (PHONE, ID_NUMBER, NAME):
        assert secret not in stored


def test_events_are_published_at_once_as_cloudevents(client, bearer, visit_body, amqp_url):
    conn = connect(amqp_url)
    ch = conn.channel()
    topology.declare_exchanges(ch)
    ch.queue_declare("t.intake.all", durable=True, arguments={"x-queue-type": "quorum"})
    ch.queue_purge("t.intake.all")
    ch.queue_bind("t.intake.all", "nighttalk.events", routing_key="#")
    conn.close()
    r = client.post("/v1/visits", json=visit_body, headers=bearer())
    got = testing.get_messages(amqp_url, "t.intake.all", count=6, timeout=10)
    # A queue bound to every key would make the session's other tests' unroutable
    # events routable: take it away again.
    conn = connect(amqp_url)
    conn.channel().queue_delete("t.intake.all")
    conn.close()
    types = sorted(props.headers["ce-type"] for _, props, _ in got)
    assert types == sorted(
        ["nighttalk.case.registered.v1"] * 3
        + [
            "nighttalk.case.resolved_on_spot.v1",
            "nighttalk.visit.registered.v1",
            "nighttalk.visit.contact_recorded.v1",
        ]
    )
    subjects = {
        props.headers["ce-subject"]
        for _, props, _ in got
        if props.headers["ce-type"] == "nighttalk.case.registered.v1"
    }
    assert subjects == {c["case_id"] for c in r.get_json()["cases"]}


def test_another_unit_cannot_read_visits_or_cases(client, bearer, visit_body):
    created = client.post("/v1/visits", json=visit_body, headers=bearer()).get_json()
    number = created["cases"][0]["case_number"]
    for path in (
        f"/v1/visits/{created['visit_id']}",
        f"/v1/cases/{number}",
        f"/v1/cases/{created['cases'][0]['case_id']}",
    ):
        assert client.get(path, headers=bearer("lw-org")).status_code == 404
        assert client.get(path, headers=bearer("city-org")).status_code == 200
        assert client.get(path, headers=bearer("lw-org", "admin")).status_code == 200


def _valid(visit_body):
    return copy.deepcopy(visit_body)


def _set(body, path, value):
    target = body
    for part in path[:-1]:
        target = target[part]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


_DELETE = object()
BAD_FIELDS = [
    (("channel",), "walk_in", "channel"),
    (("channel",), _DELETE, "channel"),
    (("received_at",), "yesterday", "received_at"),
    (("received_at",), "2026-11-15T17:05:00", "received_at"),  # no time zone
    (("received_at",), "2999-01-01T00:00:00+08:00", "received_at"),
    (("received_at",), "1996-01-15T17:00:00+08:00", "received_at"),
    (("received_at",), "0001-01-01T00:00:00+08:00", "received_at"),
    (("received_at",), "9999-12-31T23:00:00-08:00", "received_at"),
    (("headcount",), 0, "headcount"),
    (("headcount",), "5", "headcount"),
    (("headcount",), 10**9, "headcount"),
    (("leader",), "黄" * 51, "leader"),
    (("leader",), "黄\x00", "leader"),  # PostgreSQL refuses NUL: a 422, not a 500
    (("issues", 0, "summary"), "拖欠\x00工资", "issues"),
    (("visitor",), _DELETE, "visitor"),
    (("visitor", "name"), "", "visitor"),
    (("visitor", "phone"), "call me", "visitor"),
    (("visitor", "id_number"), "12345", "visitor"),
    (("visitor", "nickname"), "x", "visitor"),
    (("issues", 0, "category"), "aliens", "issues"),
    (("issues", 0, "summary"), "   ", "issues"),
    (("issues", 0, "summary"), "x" * 201, "issues"),
    (("issues", 0, "disposition", "action"), "ignore", "issues"),
    (("issues", 0, "disposition", "answer"), _DELETE, "issues"),
    (("issues", 1, "disposition", "unit"), _DELETE, "issues"),
    (("issues", 1, "disposition", "unit"), "Not A Unit!", "issues"),
    (("issues", 2, "accused"), {}, "issues"),
    (("issues",), [{"category": "land"}], "issues"),
    (("issues",), "not a list", "issues"),
    (("follow_ups",), ["not-a-case-number"], "follow_ups"),
    (("follow_ups",), ["city-org-20261115-0001", "city-org-20261115-0001"], "follow_ups"),
    (("surprise",), 1, "surprise"),
]


@pytest.mark.parametrize("path, value, field", BAD_FIELDS)
def test_bad_fields_get_422_naming_the_field(client, bearer, visit_body, path, value, field):
    body = _set(_valid(visit_body), path, value)
    r = client.post("/v1/visits", json=body, headers=bearer())
    assert r.status_code == 422, r.get_json()
    assert field in r.get_json()["errors"]["json"]


def test_too_many_issues_are_refused(client, bearer, visit_body):
    body = _valid(visit_body)
    body["issues"] = body["issues"][:1] * 21
    r = client.post("/v1/visits", json=body, headers=bearer())
    assert r.status_code == 422 and "issues" in r.get_json()["errors"]["json"]


@pytest.mark.parametrize(
    "data, content_type, status",
    [
        ("{not json", "application/json", 400),
        ("[]", "application/json", 422),
        ("null", "application/json", 422),
        ("channel=night_talk", "application/x-www-form-urlencoded", 415),
        ("{}", "text/plain", 415),
    ],
)
def test_malformed_bodies_get_4xx(client, bearer, data, content_type, status):
    r = client.post("/v1/visits", data=data, headers={**bearer(), "Content-Type": content_type})
    assert r.status_code == status, r.get_json()
    assert r.get_json()["message"]


def test_a_body_over_the_limit_gets_413(client, bearer, visit_body):
    body = _valid(visit_body)
    body["issues"][0]["details"] = "长" * 200_000
    r = client.post("/v1/visits", json=body, headers=bearer())
    assert r.status_code == 413
    assert "too large" in r.get_json()["message"]


@pytest.mark.parametrize(
    "headers, status",
    [
        ({}, 401),
        ({"Authorization": "Bearer not-a-token"}, 401),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401),
    ],
)
def test_requests_without_a_valid_token_get_401(client, visit_body, headers, status):
    r = client.post("/v1/visits", json=visit_body, headers=headers)
    assert r.status_code == status
    assert r.get_json()["message"]


def test_tokens_signed_otherwise_or_expired_or_unsigned_get_401(client, visit_body):
    import jwt

    from servicekit import auth

    wrong_key = auth.mint("city-org", ["reception"], key="another-secret-of-enough-length-0123")
    expired = auth.mint("city-org", ["reception"], ttl=1)
    payload = jwt.decode(expired, options={"verify_signature": False})
    payload["exp"] = 1
    expired = jwt.encode(payload, auth.secret(), algorithm="HS256")
    unsigned = jwt.encode({**payload, "exp": 4_000_000_000}, key=None, algorithm="none")
    for token in (wrong_key, expired, unsigned):
        r = client.post("/v1/visits", json=visit_body, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, token


def test_a_partner_token_cannot_register_visits(client, bearer, visit_body):
    r = client.post("/v1/visits", json=visit_body, headers=bearer("lw-guokeng", "partner"))
    assert r.status_code == 403


def test_unknown_visit_and_case_are_404(client, bearer):
    assert client.get("/v1/visits/not-a-uuid", headers=bearer()).status_code == 404
    assert (
        client.get("/v1/visits/00000000-0000-0000-0000-000000000000", headers=bearer()).status_code
        == 404
    )
    assert client.get("/v1/cases/city-org-20261115-9999", headers=bearer()).status_code == 404
    assert client.get("/v1/cases/" + "x" * 500, headers=bearer()).status_code == 404
    assert client.get("/v1/cases/a%00b", headers=bearer()).status_code == 404


def test_probes_and_openapi(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["checks"] == {
        "database": "ok",
        "broker": "ok",
    }
    spec = client.get("/openapi.json").get_json()
    assert "/v1/visits" in spec["paths"] and "/v1/cases/{ref}" in spec["paths"]
    assert re.search("http_requests_total", client.get("/metrics").get_data(as_text=True))


def test_readyz_is_503_when_the_broker_is_away(database_url):
    from intake.app import create_app

    app = create_app(
        {"DATABASE_URL": database_url, "AMQP_URL": "amqp://guest:guest@127.0.0.1:1/%2F"}
    )
    r = app.test_client().get("/readyz")
    assert r.status_code == 503
    assert r.get_json()["checks"]["broker"].startswith("unavailable")
    app.extensions["runtime"].close()


def test_registration_commits_even_when_the_broker_is_away(database_url, bearer, visit_body):
    from intake.app import create_app

    app = create_app(
        {"DATABASE_URL": database_url, "AMQP_URL": "amqp://guest:guest@127.0.0.1:1/%2F"}
    )
    r = app.test_client().post("/v1/visits", json=visit_body, headers=bearer())
    assert r.status_code == 201
    engine = create_engine(database_url)
    with engine.connect() as conn:
        unsent = conn.execute(
            text("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
        ).scalar_one()
    engine.dispose()
    assert unsent == 6  # all kept for the relay
    app.extensions["runtime"].close()


def test_metrics_count_events_and_report_the_outbox(client, bearer, visit_body):
    client.post("/v1/visits", json=visit_body, headers=bearer())
    text = client.get("/metrics").get_data(as_text=True)
    assert re.search(
        r'nighttalk_events_published_total\{event="case.registered",service="intake"\} [1-9]', text
    )
    assert re.search(r'nighttalk_outbox_backlog\{service="intake"\} \d', text)
    assert "nighttalk_outbox_oldest_age_seconds" in text
