"""The board, the ladder's admin API, feedback (回访) and named supervisors, over HTTP."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from sqlalchemy import event, text
from supervision_samples import (
    ADMIN,
    CST,
    assignment_event,
    bearer,
    case_registered,
    case_routed,
    consume,
    new_case,
    unit_changed,
)
from test_supervision_ladder import DUE, ONE_MONTH, ROUTED, THREE_MONTHS, WARNING_AT

from eventbus import testing
from supervision import ladder, models, usecases
from supervision.schemas import BoardCaseOut


def route(rt, unit: str, *, due=DUE, received_at=None, category="demolition_compensation"):
    """Register and route a case to ``unit``; return (case id, number, assignment id)."""
    case_id, number = new_case()
    assignment_id = str(uuid.uuid4())
    overrides = {"category": category}
    if received_at is not None:
        overrides["received_at"] = received_at.isoformat()
    consume(rt, case_registered(case_id, number, **overrides))
    consume(
        rt,
        case_routed(
            case_id,
            number,
            unit=unit,
            routed_at=ROUTED,
            due_at=due,
            assignment_id=assignment_id,
            category=category,
        ),
    )
    return case_id, number, assignment_id


def outbox(rt, routing_key: str) -> list[dict]:
    with rt.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT body FROM outbox WHERE routing_key = :k ORDER BY position"),
            {"k": routing_key},
        ).all()
    return [json.loads(body) for (body,) in rows]


# -- the board -----------------------------------------------------------------------------


def test_the_board_lists_a_jurisdiction_furthest_step_first_then_oldest(client, rt, directory):
    early = dt.datetime(2026, 11, 1, 20, 0, tzinfo=CST)
    late = dt.datetime(2026, 11, 10, 20, 0, tzinfo=CST)
    _, overdue_old, _ = route(rt, "lw-buwen", received_at=early)
    _, overdue_new, _ = route(rt, "lw-chaoyang", received_at=late)
    _, fresh, _ = route(rt, "lw-buwen", due=dt.datetime(2027, 6, 1, tzinfo=CST))
    _, listed, _ = route(rt, "lw-buwen", due=dt.datetime(2026, 12, 1, tzinfo=CST))
    _, elsewhere, _ = route(rt, "xc")
    ladder.sweep(rt, dt.datetime(2027, 1, 10, tzinfo=CST))

    response = client.get("/v1/board", headers=bearer("lw", "supervisor"))

    assert response.status_code == 200, response.json
    body = response.json
    assert [c["case_number"] for c in body["items"]] == [listed, overdue_old, overdue_new, fresh]
    assert [c["ladder_step"] for c in body["items"]] == [
        "unit-leader",
        "overdue",
        "overdue",
        None,
    ]
    assert body["levels"] == [
        {"position": 3, "step": "unit-leader", "count": 1},
        {"position": 2, "step": "overdue", "count": 2},
        {"position": 0, "step": None, "count": 1},
    ]
    assert body["total"] == 4
    assert elsewhere not in {c["case_number"] for c in body["items"]}
    # A row carries every field the board shows, with the values the case's own view has.
    first = body["items"][0]
    assert set(first) == set(BoardCaseOut().fields)
    detail = client.get(f"/v1/cases/{listed}", headers=ADMIN).json
    shared = sorted(first.keys() & detail.keys())
    assert len(shared) == 8, shared
    assert [first[k] for k in shared] == [detail[k] for k in shared]
    assert (first["ladder_position"], first["major_supervisor"]) == (3, None)

    # The admin sees every unit; a township's supervisor only its own.
    assert client.get("/v1/board", headers=ADMIN).json["total"] == 5
    township = client.get("/v1/board", headers=bearer("lw-chaoyang", "supervisor")).json
    assert [c["case_number"] for c in township["items"]] == [overdue_new]


def test_a_departments_supervisor_governs_its_county_or_the_city(client, rt, directory):
    """DESIGN: a city department the whole city, a county's departments that county."""
    consume(rt, unit_changed("city-org", parent="city", leader="部长", level="city"))
    consume(rt, unit_changed("lw-org", parent="lw", leader="部长", level="county"))
    _, in_lw, _ = route(rt, "lw-buwen")
    _, in_xc, _ = route(rt, "xc")

    def board(unit: str) -> set[str]:
        response = client.get("/v1/board", headers=bearer(unit, "supervisor"))
        assert response.status_code == 200, response.json
        return {c["case_number"] for c in response.json["items"]}

    assert board("lw-org") == {in_lw}
    assert board("city-org") == {in_lw, in_xc}
    # A case of another county is as unknown to the county's department as any other.
    case = client.get(f"/v1/cases/{in_xc}", headers=bearer("lw-org", "supervisor"))
    assert case.status_code == 404
    assert (
        client.get(f"/v1/cases/{in_xc}", headers=bearer("city-org", "supervisor")).status_code
        == 200
    )


def test_the_board_filters_by_unit_category_and_step_and_pages(client, rt, directory):
    route(rt, "lw-buwen")
    route(rt, "lw-chaoyang")
    route(rt, "lw-chaoyang", category="land_acquisition")
    ladder.sweep(rt, DUE)
    supervisor = bearer("lw", "supervisor")

    def numbers(query: str) -> int:
        response = client.get(f"/v1/board?{query}", headers=supervisor)
        assert response.status_code == 200, response.json
        return response.json["total"]

    assert numbers("unit=lw-chaoyang") == 2
    assert numbers("unit=lw-chaoyang&category=land_acquisition") == 1
    assert numbers("step=overdue") == 3
    assert numbers("step=warning") == 0
    page = client.get("/v1/board?page_size=2&page=2", headers=supervisor).json
    assert (page["total"], len(page["items"]), page["page"]) == (3, 1, 2)


def test_a_supervisors_board_of_one_unit_reads_the_directory_once(client, rt, directory):
    # The jurisdiction and the asked unit's subtree both come from the directory copy:
    # one read of it serves the request.
    route(rt, "lw-chaoyang")
    with testing.reads_of(rt.engine, "units") as reads:
        response = client.get("/v1/board?unit=lw-chaoyang", headers=bearer("lw", "supervisor"))

    assert response.status_code == 200, response.json
    assert response.json["total"] == 1
    assert len(reads) == 1, reads


def test_the_board_asks_the_same_statements_of_any_jurisdiction(client, rt, directory, db_backend):
    # PostgreSQL then plans them once per connection (psycopg prepares a statement it sees
    # often, and keeps it while requests end in COMMIT), not at every request.
    route(rt, "lw-buwen")
    route(rt, "xc")
    asked: dict[str, list[str]] = {}

    def on_statement(_conn, _cursor, statement, *_):
        asked.setdefault(unit, []).append(statement)

    event.listen(rt.engine, "before_cursor_execute", on_statement)
    try:
        with testing.transaction_endings(rt.engine) as ended:
            for unit in ("lw", "xc"):  # three units, one unit
                response = client.get("/v1/board", headers=bearer(unit, "supervisor"))
                assert response.status_code == 200, response.json
    finally:
        event.remove(rt.engine, "before_cursor_execute", on_statement)

    assert ended == ["commit", "commit"]
    if db_backend == "postgresql":  # SQLite has no arrays: an IN list as long as the units
        assert asked["lw"] == asked["xc"]


def test_a_complaint_about_a_unit_is_kept_from_that_unit_and_those_below_it(client, rt, directory):
    # Routing withholds a complaint about lw-org from lw-org (and its sub-units) and sends
    # it to lw; lw-org's supervisors govern the county, so jurisdiction alone let them in.
    consume(rt, unit_changed("lw-org", parent="lw", leader="部长", level="county"))
    consume(rt, unit_changed("lw-org-office", parent="lw-org", leader="主任", level="county"))
    case_id, number = new_case()
    assignment_id = str(uuid.uuid4())
    consume(rt, case_registered(case_id, number, accused={"unit": "lw-org", "person": "王某"}))
    consume(
        rt,
        case_routed(
            case_id, number, unit="lw", routed_at=ROUTED, due_at=DUE, assignment_id=assignment_id
        ),
    )
    route(rt, "lw-buwen")  # another case of the county, not about lw-org
    ladder.sweep(rt, THREE_MONTHS)

    for unit in ("lw-org", "lw-org-office"):
        accused = bearer(unit, "supervisor")
        assert client.get(f"/v1/cases/{number}", headers=accused).status_code == 404
        assert client.get(f"/v1/cases/{number}/timeline", headers=accused).status_code == 404
        board = client.get("/v1/board", headers=accused).json
        assert number not in [item["case_number"] for item in board["items"]]
        assert board["total"] == len(board["items"]) == 1
        assert sum(level["count"] for level in board["levels"]) == 1
        agenda = client.get("/v1/meetings/2027-03/agenda", headers=accused).json
        listed = [c["case_number"] for u in agenda["units"] for c in u["cases"]]
        assert number not in listed and len(listed) == 1
        named = client.put(
            f"/v1/cases/{number}/supervisor",
            headers=accused,
            json={"supervisor": "王某", "supervisor_unit": unit},
        )
        assert named.status_code == 404
        decided = client.post(
            "/v1/meetings/2027-03/decisions",
            headers=accused,
            json={"case": number, "decision": "note", "note": "x"},
        )
        assert decided.status_code == 404
    consume(rt, assignment_event("assignment.resolved", case_id, number, assignment_id, unit="lw"))
    feedback = client.post(
        f"/v1/cases/{number}/feedback",
        headers=bearer("lw-org", "supervisor"),
        json={"satisfied": True},
    )
    assert feedback.status_code == 404
    # The superior routing chose, and the admin, still see and act on it.
    superior = bearer("lw", "supervisor")
    assert client.get(f"/v1/cases/{number}", headers=superior).status_code == 200
    assert client.get(f"/v1/cases/{number}", headers=ADMIN).status_code == 200


@pytest.mark.parametrize("roles", [["reception"], ["partner"], ["reception", "partner"]])
def test_reception_and_partner_tokens_cannot_read_the_board(client, roles):
    assert client.get("/v1/board", headers=bearer("lw-buwen", *roles)).status_code == 403
    assert client.get("/v1/board").status_code == 401


def test_a_supervisor_cannot_ask_for_a_unit_outside_its_jurisdiction(client, directory):
    response = client.get("/v1/board?unit=xc", headers=bearer("lw", "supervisor"))
    assert response.status_code == 403
    assert response.json["errors"] == {"query": {"unit": ["outside your jurisdiction"]}}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("page_size=101", "page_size"),
        ("page=0", "page"),
        ("page=x", "page"),
        ("unit=NOT A UNIT", "unit"),
        ("category=%20", "category"),
        ("colour=red", "colour"),
    ],
)
def test_bad_board_queries_are_refused_field_by_field(client, query, field):
    response = client.get(f"/v1/board?{query}", headers=ADMIN)
    assert response.status_code == 422
    assert list(response.json["errors"]["query"]) == [field]


# -- the ladder as data ----------------------------------------------------------------------


def test_admins_change_the_ladder_and_new_clocks_follow_it(client, rt):
    response = client.put(
        "/v1/ladder/warning",
        headers=ADMIN,
        json={"position": 1, "event": "warning", "percent_of_term": 50},
    )
    assert response.status_code == 200, response.json
    response = client.put(
        "/v1/ladder/city-leader",
        headers=ADMIN,
        json={
            "position": 4,
            "event": "escalated",
            "level": 2,
            "months_after_due": 2,
            "supervised_by": "city",
        },
    )
    assert response.status_code == 200, response.json
    case_id, _, _ = route(rt, "lw-buwen")

    halfway = ROUTED + (DUE - ROUTED) / 2
    assert ladder.sweep(rt, halfway).fired == {"warning": 1}
    two_months = dt.datetime(2027, 2, 15, 9, 0, tzinfo=CST)
    assert ladder.sweep(rt, two_months).fired == {
        "overdue": 1,
        "unit-leader": 1,
        "city-leader": 1,
    }

    steps = client.get("/v1/ladder", headers=bearer("lw", "supervisor")).json["steps"]
    assert [(s["step"], s["percent_of_term"], s["months_after_due"]) for s in steps] == [
        ("warning", 50, None),
        ("overdue", None, 0),
        ("unit-leader", None, 1),
        ("city-leader", None, 2),
    ]


def test_a_step_turned_off_no_longer_fires(client, rt):
    response = client.put(
        "/v1/ladder/warning",
        headers=ADMIN,
        json={"position": 1, "event": "warning", "percent_of_term": 80, "active": False},
    )
    assert response.status_code == 200
    route(rt, "lw-buwen")
    assert ladder.sweep(rt, DUE).fired == {"overdue": 1}


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"position": 1, "event": "warning"}, ["percent_of_term"]),
        (
            {"position": 1, "event": "warning", "percent_of_term": 80, "months_after_due": 1},
            ["percent_of_term"],
        ),
        ({"position": 9, "event": "escalated", "months_after_due": 1}, ["level", "supervised_by"]),
        ({"position": 9, "event": "overdue", "days_after_due": 2, "level": 1}, ["level"]),
        ({"position": 0, "event": "warning", "percent_of_term": 80}, ["position"]),
        ({"position": 1, "event": "warning", "percent_of_term": 101}, ["percent_of_term"]),
        ({"position": 1, "event": "shout", "percent_of_term": 80}, ["event"]),
        ({"position": 1, "event": "warning", "percent_of_term": 80, "x": 1}, ["x"]),
    ],
)
def test_bad_ladder_steps_are_refused_field_by_field(client, body, fields):
    response = client.put("/v1/ladder/warning", headers=ADMIN, json=body)
    assert response.status_code == 422
    assert sorted(response.json["errors"]["json"]) == sorted(fields)


def test_a_position_taken_by_another_step_is_a_conflict(client):
    response = client.put(
        "/v1/ladder/reminder",
        headers=ADMIN,
        json={"position": 1, "event": "warning", "percent_of_term": 50},
    )
    assert response.status_code == 409
    assert response.json["errors"] == {"json": {"position": ["taken by another step"]}}


@pytest.mark.parametrize("roles", [["supervisor"], ["reception"], ["partner"]])
def test_only_admins_change_the_ladder(client, roles):
    response = client.put(
        "/v1/ladder/warning",
        headers=bearer("city", *roles),
        json={"position": 1, "event": "warning", "percent_of_term": 50},
    )
    assert response.status_code == 403


def test_partners_and_reception_cannot_read_the_ladder(client):
    assert client.get("/v1/ladder", headers=bearer("lw-buwen", "partner")).status_code == 403
    assert client.get("/v1/ladder", headers=bearer("lw-buwen", "reception")).status_code == 403


# -- feedback (回访) --------------------------------------------------------------------------


def resolved_case(rt, unit: str = "lw-buwen"):
    case_id, number, assignment_id = route(rt, unit)
    consume(
        rt,
        assignment_event(
            "assignment.resolved",
            case_id,
            number,
            assignment_id,
            answer="已补发",
            occurred_at=dt.datetime(2026, 12, 1, 10, 0, tzinfo=CST),
        ),
    )
    return case_id, number, assignment_id


def test_a_satisfied_visitor_closes_the_case(client, rt):
    case_id, number, _ = resolved_case(rt)
    reception = bearer("city-org", "reception")

    response = client.post(
        f"/v1/cases/{number}/feedback", headers=reception, json={"satisfied": True}
    )

    assert response.status_code == 200, response.json
    assert response.json == {"case_number": number, "status": "closed", "outcome": "satisfied"}
    [closed] = outbox(rt, "case.closed")
    assert (closed["case_id"], closed["outcome"]) == (case_id, "satisfied")
    [received] = outbox(rt, "case.feedback_received")
    assert received["satisfied"] is True
    timeline = client.get(f"/v1/cases/{number}/timeline", headers=reception).json["entries"]
    types = [e["type"] for e in timeline]
    assert types.count("case.feedback_received") == types.count("case.closed") == 1


def test_an_unsatisfied_visitor_reopens_the_case_and_the_next_routing_restarts_the_clock(
    client, rt, directory
):
    case_id, number, _ = resolved_case(rt)

    response = client.post(
        f"/v1/cases/{number}/feedback",
        headers=bearer("city", "supervisor"),
        json={"satisfied": False, "comment": "补偿款只发了一半"},
    )

    assert response.status_code == 200, response.json
    assert response.json["status"] == "reopened"
    [reopened] = outbox(rt, "case.reopened")
    assert (reopened["unit"], reopened["reason"]) == ("lw-buwen", "补偿款只发了一半")
    assert ladder.sweep(rt, THREE_MONTHS).total == 0  # no clock until routing sends it back

    back = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    consume(
        rt,
        case_routed(
            case_id,
            number,
            unit="lw-buwen",
            routed_at=back,
            due_at=back + dt.timedelta(days=30),
            assignment_id=str(uuid.uuid4()),
        ),
    )
    with rt.sessions() as session:
        assert session.get(models.SupervisedCase, case_id).status == models.ROUTED
    assert ladder.sweep(rt, back + dt.timedelta(days=30)).fired == {"warning": 1, "overdue": 1}


def test_a_reopened_case_resolved_before_its_new_routing_arrives_waits_for_feedback(
    client, rt, directory
):
    """Routing sends the reopened case back; the new assignment's answer overtakes its routing."""
    case_id, number, _ = resolved_case(rt)
    response = client.post(f"/v1/cases/{number}/feedback", headers=ADMIN, json={"satisfied": False})
    assert response.json["status"] == "reopened"
    back = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    again = str(uuid.uuid4())
    consume(
        rt,
        assignment_event(
            "assignment.resolved",
            case_id,
            number,
            again,
            answer="已全额补发",
            occurred_at=back + dt.timedelta(days=3),
        ),
    )
    consume(
        rt,
        case_routed(
            case_id,
            number,
            unit="lw-buwen",
            routed_at=back,
            due_at=back + dt.timedelta(days=30),
            assignment_id=again,
        ),
    )

    with rt.sessions() as session:
        case = session.get(models.SupervisedCase, case_id)
        assert (case.status, case.assignment_id) == (models.RESOLVED, again)
    assert ladder.sweep(rt, back + dt.timedelta(days=200)).total == 0
    response = client.post(f"/v1/cases/{number}/feedback", headers=ADMIN, json={"satisfied": True})
    assert response.status_code == 200, response.json
    assert response.json["status"] == "closed"


def test_a_reopened_case_resolved_again_on_the_same_assignment_waits_for_feedback(
    client, rt, directory
):
    case_id, number, assignment_id = resolved_case(rt)
    response = client.post(f"/v1/cases/{number}/feedback", headers=ADMIN, json={"satisfied": False})
    assert response.json["status"] == "reopened"
    again = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    consume(
        rt,
        assignment_event(
            "assignment.resolved",
            case_id,
            number,
            assignment_id,
            answer="已全额补发",
            occurred_at=again,
        ),
    )

    with rt.sessions() as session:
        case = session.get(models.SupervisedCase, case_id)
        assert (case.status, case.resolved_at) == (models.RESOLVED, again)
    response = client.post(f"/v1/cases/{number}/feedback", headers=ADMIN, json={"satisfied": True})
    assert response.status_code == 200, response.json
    assert response.json["status"] == "closed"


def test_feedback_on_a_case_not_yet_resolved_is_a_conflict(client, rt):
    _, number, _ = route(rt, "lw-buwen")
    response = client.post(f"/v1/cases/{number}/feedback", headers=ADMIN, json={"satisfied": True})
    assert response.status_code == 409
    assert "satisfied" in response.json["errors"]["json"]


def test_a_retried_feedback_with_its_key_records_it_once(client, rt):
    _, number, _ = resolved_case(rt)
    headers = {**bearer("city-org", "reception"), "Idempotency-Key": "feedback-1"}

    first = client.post(f"/v1/cases/{number}/feedback", headers=headers, json={"satisfied": True})
    again = client.post(f"/v1/cases/{number}/feedback", headers=headers, json={"satisfied": True})
    other = client.post(f"/v1/cases/{number}/feedback", headers=headers, json={"satisfied": False})

    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json == first.json
    assert len(outbox(rt, "case.closed")) == 1
    assert other.status_code == 422
    assert other.json["errors"] == {
        "headers": {"Idempotency-Key": ["already used for a different request"]}
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "satisfied"),
        ({"satisfied": "maybe"}, "satisfied"),
        ({"satisfied": True, "comment": "x" * 501}, "comment"),
        ({"satisfied": True, "mood": "ok"}, "mood"),
    ],
)
def test_bad_feedback_is_refused_field_by_field(client, rt, body, field):
    _, number, _ = resolved_case(rt)
    response = client.post(f"/v1/cases/{number}/feedback", headers=ADMIN, json=body)
    assert response.status_code == 422
    assert list(response.json["errors"]["json"]) == [field]


@pytest.mark.parametrize(
    ("unit", "roles", "status"),
    [
        ("lw-buwen", ["partner"], 403),  # the unit under assessment does not grade itself
        ("lw-buwen", ["supervisor"], 403),  # nor does its supervisor
        ("lw-buwen", ["reception", "supervisor"], 403),  # whatever its roles
        ("xc", ["reception"], 404),  # not the desk that received it
        ("xc", ["supervisor"], 404),  # outside its jurisdiction
    ],
)
def test_feedback_is_only_for_the_receiving_desk_and_the_supervisors(
    client, rt, directory, unit, roles, status
):
    _, number, _ = resolved_case(rt)
    response = client.post(
        f"/v1/cases/{number}/feedback", headers=bearer(unit, *roles), json={"satisfied": True}
    )
    assert response.status_code == status
    assert outbox(rt, "case.closed") == []


def test_the_desk_records_the_visitors_word_on_its_own_units_answer(client, rt):
    # A unit's leaders receive visitors about the unit's own work: the desk that received
    # the visitor takes the visitor's feedback; the unit's supervisor does not grade it.
    _, number, _ = resolved_case(rt, "city-org")
    supervisor = client.post(
        f"/v1/cases/{number}/feedback",
        headers=bearer("city-org", "supervisor"),
        json={"satisfied": True},
    )
    assert supervisor.status_code == 403
    desk = client.post(
        f"/v1/cases/{number}/feedback",
        headers=bearer("city-org", "reception"),
        json={"satisfied": True},
    )
    assert desk.status_code == 200, desk.json
    assert [closed["outcome"] for closed in outbox(rt, "case.closed")] == ["satisfied"]


def test_no_answer_within_the_window_closes_the_case_as_no_feedback_once(rt):
    case_id, _, _ = resolved_case(rt)
    resolved_at = dt.datetime(2026, 12, 1, 10, 0, tzinfo=CST)
    window = dt.timedelta(days=15)

    assert (
        usecases.sweep_feedback(rt, resolved_at + window - dt.timedelta(seconds=1), window, 10) == 0
    )
    assert usecases.sweep_feedback(rt, resolved_at + window, window, 10) == 1
    assert usecases.sweep_feedback(rt, resolved_at + window * 3, window, 10) == 0

    [closed] = outbox(rt, "case.closed")
    assert (closed["case_id"], closed["outcome"]) == (case_id, "no_feedback")
    assert closed["occurred_at"] == (resolved_at + window).astimezone(dt.UTC).isoformat()


# -- a named supervisor for a major case (重案) -------------------------------------------------


def test_a_major_case_gets_a_named_supervisor_once(client, rt, directory):
    case_id, number, _ = route(rt, "lw-buwen")
    body = {"supervisor": "李副市长", "supervisor_unit": "city"}

    first = client.put(f"/v1/cases/{number}/supervisor", headers=ADMIN, json=body)
    again = client.put(f"/v1/cases/{number}/supervisor", headers=ADMIN, json=body)

    assert (first.status_code, again.status_code) == (200, 200)
    [escalated] = outbox(rt, "case.escalated")
    assert (escalated["case_id"], escalated["level"], escalated["supervisor"]) == (
        case_id,
        "major",
        "李副市长",
    )
    outside = client.put(
        f"/v1/cases/{number}/supervisor", headers=bearer("xc", "supervisor"), json=body
    )
    assert outside.status_code == 404
    partner = client.put(
        f"/v1/cases/{number}/supervisor", headers=bearer("lw-buwen", "partner"), json=body
    )
    assert partner.status_code == 403
    bad = client.put(f"/v1/cases/{number}/supervisor", headers=ADMIN, json={"supervisor": ""})
    assert bad.status_code == 422
    assert sorted(bad.json["errors"]["json"]) == ["supervisor", "supervisor_unit"]


def test_the_ladder_events_land_on_the_timeline(client, rt):
    _, number, _ = route(rt, "lw-buwen")
    ladder.sweep(rt, ONE_MONTH)
    entries = client.get(f"/v1/cases/{number}/timeline", headers=ADMIN).json["entries"]
    ladder_entries = [
        e for e in entries if e["type"] in ("case.warning", "case.overdue", "case.escalated")
    ]
    assert [e["type"] for e in ladder_entries] == ["case.warning", "case.overdue", "case.escalated"]
    assert ladder_entries[0]["occurred_at"] == WARNING_AT.astimezone(dt.UTC).isoformat()
