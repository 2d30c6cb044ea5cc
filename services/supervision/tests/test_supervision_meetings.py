"""The joint meeting's agenda and decisions, and the cadre assessment feed."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from sqlalchemy import text
from supervision_samples import (
    ADMIN,
    CST,
    bearer,
    case_registered,
    case_routed,
    consume,
    new_case,
    unit_changed,
)

from eventbus import testing
from supervision import ladder

ROUTED = dt.datetime(2026, 11, 15, 9, 0, tzinfo=CST)
DUE = dt.datetime(2026, 12, 15, 9, 0, tzinfo=CST)


def route(rt, unit: str, *, accused=None, received_at=None, due=DUE):
    case_id, number = new_case()
    overrides = {"accused": accused}
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
            assignment_id=str(uuid.uuid4()),
        ),
    )
    return case_id, number


def outbox(rt, routing_key: str) -> list[dict]:
    with rt.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT body FROM outbox WHERE routing_key = :k ORDER BY position"),
            {"k": routing_key},
        ).all()
    return [json.loads(body) for (body,) in rows]


@pytest.fixture
def january(client, rt, directory):
    """Two cases listed in January (buwen, chaoyang), a major case in xc, a fresh one."""
    _, listed_buwen = route(rt, "lw-buwen")
    _, listed_chaoyang = route(rt, "lw-chaoyang")
    _, major = route(rt, "xc")
    _, fresh = route(rt, "lw-buwen", due=dt.datetime(2027, 1, 10, tzinfo=CST))  # overdue only
    ladder.sweep(rt, dt.datetime(2027, 1, 16, tzinfo=CST))
    response = client.put(
        f"/v1/cases/{major}/supervisor",
        headers=ADMIN,
        json={"supervisor": "李副市长", "supervisor_unit": "city"},
    )
    assert response.status_code == 200
    return {"buwen": listed_buwen, "chaoyang": listed_chaoyang, "major": major, "fresh": fresh}


def test_the_agenda_groups_escalated_and_major_cases_by_unit(client, january):
    response = client.get("/v1/meetings/2027-01/agenda", headers=ADMIN)

    assert response.status_code == 200, response.json
    units = response.json["units"]
    assert [(u["unit"], [c["case_number"] for c in u["cases"]]) for u in units] == [
        ("lw-buwen", [january["buwen"]]),
        ("lw-chaoyang", [january["chaoyang"]]),
        ("xc", [january["major"]]),
    ]
    assert units[0]["name"] == "lw-buwen"
    assert [u["cases"][0]["level"] for u in units] == ["1", "1", "major"]

    # In December nothing was listed yet; only the major case (named in real time) is not
    # before January 2027 either way.
    december = client.get("/v1/meetings/2026-12/agenda", headers=ADMIN).json
    assert [u["unit"] for u in december["units"]] == ["xc"]

    # A county supervisor sees its own units only.
    county = client.get("/v1/meetings/2027-01/agenda", headers=bearer("lw", "supervisor")).json
    assert [u["unit"] for u in county["units"]] == ["lw-buwen", "lw-chaoyang"]


def test_a_decision_is_recorded_once_and_announced_for_routing(client, rt, january):
    body = {
        "case": january["buwen"],
        "decision": "reassign",
        "unit": "lw",
        "note": "由县里直接督办",
    }
    headers = {**bearer("lw", "supervisor"), "Idempotency-Key": "meeting-2027-01-1"}

    first = client.post("/v1/meetings/2027-01/decisions", headers=headers, json=body)
    again = client.post("/v1/meetings/2027-01/decisions", headers=headers, json=body)
    other = client.post(
        "/v1/meetings/2027-01/decisions",
        headers=bearer("lw", "supervisor"),
        json={**body, "decision": "note", "unit": None},
    )

    assert first.status_code == 201, first.json
    assert again.json == first.json
    assert other.status_code == 409
    assert other.json["errors"] == {"json": {"case": ["already decided this month"]}}
    [event] = outbox(rt, "meeting.decision_recorded")
    assert {k: event[k] for k in ("case_number", "month", "decision", "unit", "note")} == {
        "case_number": january["buwen"],
        "month": "2027-01",
        "decision": "reassign",
        "unit": "lw",
        "note": "由县里直接督办",
    }
    agenda = client.get("/v1/meetings/2027-01/agenda", headers=ADMIN).json
    assert agenda["units"][0]["cases"][0]["decision"]["decision"] == "reassign"


@pytest.mark.parametrize(
    ("unit", "why"), [("no-such-unit", "not in the unit directory"), ("lw-chaoyang", "retired")]
)
def test_a_reassignment_to_a_unit_routing_cannot_take_is_refused_naming_it(
    client, rt, january, unit, why
):
    # Routing refuses such a decision when it arrives (poison): a 201 here was a lost one.
    retired = unit_changed("lw-chaoyang", parent="lw", leader="朝阳书记", active=False, revision=2)
    consume(rt, retired)
    body = {"case": january["buwen"], "decision": "reassign", "unit": unit, "note": "改派"}

    response = client.post("/v1/meetings/2027-01/decisions", headers=ADMIN, json=body)

    assert response.status_code == 422, response.json
    [message] = response.json["errors"]["json"]["unit"]
    assert unit in message and why in message
    assert outbox(rt, "meeting.decision_recorded") == []
    # Nothing recorded: the month's one decision is still to take.
    body["unit"] = "lw"
    again = client.post("/v1/meetings/2027-01/decisions", headers=ADMIN, json=body)
    assert again.status_code == 201, again.json


def test_a_reassignment_is_refused_while_supervision_holds_no_unit_directory(client, rt):
    # No unit.changed ever arrived: no unit can be checked, so none is taken on trust.
    _, number = route(rt, "lw-buwen")
    body = {"case": number, "decision": "reassign", "unit": "lw", "note": "改派"}

    response = client.post("/v1/meetings/2027-01/decisions", headers=ADMIN, json=body)

    assert response.status_code == 422, response.json
    [message] = response.json["errors"]["json"]["unit"]
    assert "'lw'" in message and "no unit directory" in message
    assert outbox(rt, "meeting.decision_recorded") == []
    # The other decisions name no unit and are taken as ever.
    body = {"case": number, "decision": "note", "note": "记录"}
    note = client.post("/v1/meetings/2027-01/decisions", headers=ADMIN, json=body)
    assert note.status_code == 201, note.json


@pytest.mark.parametrize("decision", ["extend", "note"])
def test_the_unit_responsible_records_no_decision_on_its_own_case(client, rt, january, decision):
    # Its supervisor could extend its own deadline, or take the month's one decision.
    body = {"case": january["buwen"], "decision": decision, "note": "本单位自定"}
    if decision == "extend":
        body["due_at"] = "2027-06-30T18:00:00+08:00"

    response = client.post(
        "/v1/meetings/2027-01/decisions", headers=bearer("lw-buwen", "supervisor"), json=body
    )

    assert response.status_code == 403, response.json
    assert "responsible" in response.json["message"]
    assert outbox(rt, "meeting.decision_recorded") == []


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"decision": "note", "note": "x"}, ["case"]),
        ({"case": "c", "decision": "reassign", "note": "x"}, ["unit"]),
        ({"case": "c", "decision": "extend", "note": "x"}, ["due_at"]),
        ({"case": "c", "decision": "extend", "note": "x", "due_at": "2027-02-01"}, ["due_at"]),
        # Year 3000 in UTC, as routing stores and announces it (its event was then poison).
        (
            {"case": "c", "decision": "extend", "note": "x", "due_at": "2999-12-31T23:00:00-05:00"},
            ["due_at"],
        ),
        ({"case": "c", "decision": "vote", "note": "x"}, ["decision"]),
        ({"case": "c", "decision": "note", "note": ""}, ["note"]),
        ({"case": "c", "decision": "note", "note": "x", "unit": "lw"}, ["unit"]),
        ({"case": "c", "decision": "note", "note": "x", "extra": 1}, ["extra"]),
    ],
)
def test_bad_decisions_are_refused_field_by_field(client, body, fields):
    response = client.post("/v1/meetings/2027-01/decisions", headers=ADMIN, json=body)
    assert response.status_code == 422
    assert sorted(response.json["errors"]["json"]) == fields


def test_a_bad_month_is_refused_and_outsiders_are_kept_out(client, january):
    for path in ("/v1/meetings/2027-13/agenda", "/v1/meetings/january/agenda"):
        response = client.get(path, headers=ADMIN)
        assert response.status_code == 422
        assert list(response.json["errors"]["path"]) == ["month"]
    for roles in (["reception"], ["partner"]):
        response = client.get("/v1/meetings/2027-01/agenda", headers=bearer("lw-buwen", *roles))
        assert response.status_code == 403
    outside = client.post(
        "/v1/meetings/2027-01/decisions",
        headers=bearer("xc", "supervisor"),
        json={"case": january["buwen"], "decision": "note", "note": "x"},
    )
    assert outside.status_code == 404


@pytest.mark.parametrize("month", ["0000-01", "9999-12"])
def test_a_month_off_the_calendar_is_refused_not_a_server_error(client, month):
    # Found by the bad-input proof: the agenda of 0000-01 answered 500 (no year 0).
    for response in (
        client.get(f"/v1/meetings/{month}/agenda", headers=ADMIN),
        client.post(
            f"/v1/meetings/{month}/decisions",
            headers=ADMIN,
            json={"case": "city-org-20261215-0001", "decision": "note", "note": "x"},
        ),
    ):
        assert response.status_code == 422, response.json
        assert list(response.json["errors"]["path"]) == ["month"]


@pytest.mark.parametrize("due_at", ["0001-01-01T00:00:00+08:00", "9999-12-31T23:00:00-08:00"])
def test_a_due_date_off_the_calendar_is_refused_not_a_server_error(client, january, due_at):
    # Found by the audit: an extension to year 1 east of UTC answered 500 (OverflowError).
    response = client.post(
        "/v1/meetings/2027-01/decisions",
        headers=ADMIN,
        json={"case": january["buwen"], "decision": "extend", "due_at": due_at, "note": "x"},
    )
    assert response.status_code == 422, response.get_data(as_text=True)[:300]
    assert list(response.json["errors"]["json"]) == ["due_at"]


def test_the_document_gives_the_month_pattern(client):
    spec = client.get("/openapi.json").json
    for path in ("/v1/meetings/{month}/agenda", "/v1/meetings/{month}/decisions"):
        (month,) = [p for p in spec["paths"][path]["parameters"] if p["name"] == "month"]
        assert month["schema"]["pattern"].startswith("^(19|2[0-9])")


@pytest.mark.parametrize("satisfied", [1, "true"])
def test_feedback_takes_a_json_boolean(client, satisfied):
    response = client.post(
        "/v1/cases/city-org-20261215-0001/feedback", headers=ADMIN, json={"satisfied": satisfied}
    )
    assert response.status_code == 422
    assert "satisfied" in response.json["errors"]["json"]


# -- the cadre assessment feed ---------------------------------------------------------------


def test_complaints_per_accused_official_for_the_organisation_department(client, rt, directory):
    day = dt.datetime(2026, 12, 15, 20, 0, tzinfo=CST)
    route(rt, "lw-buwen", accused={"unit": "lw-buwen", "person": "王某"}, received_at=day)
    route(rt, "lw-buwen", accused={"unit": "lw-buwen", "person": "王某"}, received_at=day)
    route(rt, "lw-chaoyang", accused={"unit": "lw-chaoyang", "person": None}, received_at=day)
    route(rt, "lw-buwen", accused=None, received_at=day)
    route(
        rt,
        "xc",
        accused={"unit": "xc", "person": "李某"},
        received_at=dt.datetime(2027, 1, 5, tzinfo=CST),
    )
    ladder.sweep(rt, dt.datetime(2027, 1, 16, tzinfo=CST))

    response = client.get(
        "/v1/cadre?from=2026-12-01&to=2026-12-31", headers=bearer("city-org", "supervisor")
    )

    assert response.status_code == 200, response.json
    assert response.json["rows"] == [
        {
            "accused_unit": "lw-buwen",
            "accused_person": "王某",
            "complaints": 2,
            "resolved": 0,
            "open": 2,
            "escalated": 2,
        },
        {
            "accused_unit": "lw-chaoyang",
            "accused_person": None,
            "complaints": 1,
            "resolved": 0,
            "open": 1,
            "escalated": 1,
        },
    ]
    assert response.json["total"] == 2
    narrowed = client.get("/v1/cadre?from=2026-12-01&to=2026-12-31&unit=lw-chaoyang", headers=ADMIN)
    assert [r["accused_unit"] for r in narrowed.json["rows"]] == ["lw-chaoyang"]


def test_a_complaint_naming_only_an_official_counts_for_that_official(client, rt, directory):
    # Intake takes an accused person without a unit; the feed dropped such complaints.
    day = dt.datetime(2026, 12, 15, 20, 0, tzinfo=CST)
    route(rt, "lw-buwen", accused={"unit": None, "person": "张某"}, received_at=day)
    route(rt, "lw-buwen", accused={"unit": None, "person": "张某"}, received_at=day)
    route(rt, "lw-buwen", accused={"unit": "lw-buwen", "person": "王某"}, received_at=day)
    route(rt, "lw-buwen", accused={"unit": None, "person": None}, received_at=day)

    response = client.get(
        "/v1/cadre?from=2026-12-01&to=2026-12-31", headers=bearer("city-org", "supervisor")
    )

    assert response.status_code == 200, response.json
    assert [
        (r["accused_unit"], r["accused_person"], r["complaints"]) for r in response.json["rows"]
    ] == [
        (None, "张某", 2),
        ("lw-buwen", "王某", 1),
    ]
    assert response.json["total"] == 2
    narrowed = client.get("/v1/cadre?from=2026-12-01&to=2026-12-31&unit=lw-buwen", headers=ADMIN)
    assert [r["accused_person"] for r in narrowed.json["rows"]] == ["王某"]


@pytest.mark.parametrize(
    ("unit", "roles"),
    [
        ("lw", ["supervisor"]),  # a supervisor, but not of the organisation department
        ("city-org", ["reception"]),
        ("city-org", ["partner"]),
        ("lw-buwen", ["partner"]),
    ],
)
def test_only_the_organisation_department_reads_the_cadre_feed(client, unit, roles):
    response = client.get("/v1/cadre?from=2026-12-01&to=2026-12-31", headers=bearer(unit, *roles))
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("to=2026-12-31", "from"),
        ("from=2026-12-31&to=2026-12-01", "to"),
        ("from=2026-12-01&to=2026-12-31&page_size=1000", "page_size"),
        ("from=2026-12-01&to=2026-12-31&person=x", "person"),
    ],
)
def test_bad_cadre_queries_are_refused_field_by_field(client, query, field):
    response = client.get(f"/v1/cadre?{query}", headers=ADMIN)
    assert response.status_code == 422
    assert list(response.json["errors"]["query"]) == [field]


def test_the_reads_end_in_commit(client, rt, january):
    """So that psycopg keeps the statements it prepared (it forgets them at a ROLLBACK)."""
    reads = [
        "/v1/meetings/2027-01/agenda",
        "/v1/cadre?from=2026-11-01&to=2027-01-31",
        "/v1/ladder",
    ]
    with testing.transaction_endings(rt.engine) as endings:
        for path in reads:
            response = client.get(path, headers=ADMIN)
            assert response.status_code == 200, (path, response.json)

    assert endings == ["commit"] * len(reads)
