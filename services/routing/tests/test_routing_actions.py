"""The partner actions on /v1/assignments, arbitration, extensions, and what they publish."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from routing import models
from servicekit.auth import mint


def bearer(unit: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(unit, list(roles), sub=f'{unit}:clerk')}"}


GUOKENG = bearer("lw-guokeng", "partner")
BUWEN = bearer("lw-buwen", "partner")
ADMIN = bearer("city-org", "admin")


def events(runtime, exchange: str = "nighttalk.events") -> list[tuple[str, dict]]:
    """Return (routing key, data) of the events routing wrote, oldest first."""
    table = models.metadata.tables["outbox"]
    with runtime.engine.connect() as conn:
        rows = conn.execute(
            select(table).where(table.c.exchange == exchange).order_by(table.c.position)
        )
        return [(row.routing_key, json.loads(row.body)) for row in rows]


def keys_after(runtime, mark: int, exchange: str = "nighttalk.events") -> list[str]:
    return [key for key, _ in events(runtime, exchange)[mark:]]


def post(client, path, headers, body=None):
    return client.post(path, headers=headers, json=body)


# -- the happy path -------------------------------------------------------------------------


def test_accept_progress_resolve_publish_their_events(client, runtime, signed_over):
    assignment_id = signed_over()
    mark = len(events(runtime))
    response = post(client, f"/v1/assignments/{assignment_id}/accept", GUOKENG)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "accepted"
    response = post(
        client, f"/v1/assignments/{assignment_id}/progress", GUOKENG, {"note": "已约谈医保站"}
    )
    assert response.status_code == 200
    response = post(
        client, f"/v1/assignments/{assignment_id}/resolve", GUOKENG, {"answer": "已报销"}
    )
    body = response.get_json()
    assert response.status_code == 200 and body["status"] == "resolved"
    assert body["answer"] == "已报销" and body["resolved_at"]
    published = events(runtime)[mark:]
    assert [key for key, _ in published] == [
        "assignment.accepted",
        "assignment.progressed",
        "assignment.resolved",
    ]
    common = {"case_id", "case_number", "assignment_id", "unit", "role", "occurred_at", "by"}
    accepted, progressed, resolved = (data for _, data in published)
    assert set(accepted) == common and accepted["by"] == "lw-guokeng:clerk"
    assert accepted["role"] == progressed["role"] == resolved["role"] == "lead"
    assert set(progressed) == common | {"note"} and progressed["note"] == "已约谈医保站"
    assert set(resolved) == common | {"answer"} and resolved["answer"] == "已报销"
    assert resolved["unit"] == "lw-guokeng" and resolved["assignment_id"] == assignment_id
    # The partner hears of its own acceptance on its queue.
    partner = [key for key, _ in events(runtime, "nighttalk.partners")]
    assert partner == ["lw-guokeng.case.routed", "lw-guokeng.assignment.accepted"]


# -- illegal transitions ----------------------------------------------------------------------


def test_resolving_or_reporting_before_accepting_is_a_conflict(client, runtime, signed_over):
    assignment_id = signed_over()
    mark = len(events(runtime))
    for action, body in (("resolve", {"answer": "好"}), ("progress", {"note": "在办"})):
        response = post(client, f"/v1/assignments/{assignment_id}/{action}", GUOKENG, body)
        assert response.status_code == 409
        assert "accept" in response.get_json()["message"]
    assert keys_after(runtime, mark) == []


def test_accepting_twice_and_acting_on_a_resolved_case_are_conflicts(client, signed_over):
    assignment_id = signed_over()
    assert post(client, f"/v1/assignments/{assignment_id}/accept", GUOKENG).status_code == 200
    again = post(client, f"/v1/assignments/{assignment_id}/accept", GUOKENG)
    assert again.status_code == 409 and "accepted" in again.get_json()["message"]
    post(client, f"/v1/assignments/{assignment_id}/resolve", GUOKENG, {"answer": "已办"})
    for action, body in (
        ("return", {"reason": "不归我管"}),
        ("transfer", {"to_unit": "lw", "reason": "x"}),
        ("extension", {"days": 5, "reason": "x"}),
        ("resolve", {"answer": "again"}),
    ):
        response = post(client, f"/v1/assignments/{assignment_id}/{action}", GUOKENG, body)
        assert response.status_code == 409, action


# -- BOLA ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("accept", None),
        ("return", {"reason": "r"}),
        ("transfer", {"to_unit": "lw", "reason": "r"}),
        ("progress", {"note": "n"}),
        ("resolve", {"answer": "a"}),
        ("extension", {"days": 3, "reason": "r"}),
    ],
)
def test_another_units_partner_can_neither_read_nor_act(client, runtime, signed_over, action, body):
    assignment_id = signed_over()
    mark = len(events(runtime))
    assert client.get(f"/v1/assignments/{assignment_id}", headers=BUWEN).status_code == 404
    response = post(client, f"/v1/assignments/{assignment_id}/{action}", BUWEN, body)
    assert response.status_code == 404
    # An admin or supervisor reads it but does not act for the partner.
    assert post(client, f"/v1/assignments/{assignment_id}/{action}", ADMIN, body).status_code == 403
    assert keys_after(runtime, mark) == []
    with runtime.sessions() as session:
        assert session.get(models.Assignment, assignment_id).status == "assigned"


# -- return, transfer, arbitration ---------------------------------------------------------------


def current(runtime, assignment_id: str) -> models.Assignment:
    """Follow superseded_by from an assignment to the case's current one."""
    with runtime.sessions() as session:
        assignment = session.get(models.Assignment, assignment_id)
        while assignment.superseded_by:
            assignment = session.get(models.Assignment, assignment.superseded_by)
        session.expunge(assignment)
        return assignment


def test_a_returned_case_goes_to_the_supervising_unit(client, runtime, signed_over):
    assignment_id = signed_over()
    mark = len(events(runtime))
    response = post(
        client, f"/v1/assignments/{assignment_id}/return", GUOKENG, {"reason": "非本镇"}
    )
    assert response.status_code == 200
    assert response.get_json()["status"] == "returned"
    now = current(runtime, assignment_id)
    assert now.unit == "lw" and now.status == "assigned" and now.moves == 1
    published = events(runtime)[mark:]
    assert [key for key, _ in published] == ["assignment.returned", "case.routed"]
    assert published[0][1]["reason"] == "非本镇"
    assert published[1][1]["unit"] == "lw" and published[1][1]["assignment_id"] == now.id
    # The old assignment is history: nothing more can be done to it.
    again = post(client, f"/v1/assignments/{assignment_id}/accept", GUOKENG)
    assert again.status_code == 409 and now.id in again.get_json()["message"]


def test_a_transfer_hands_the_case_on_and_announces_it(client, runtime, signed_over):
    assignment_id = signed_over()
    mark = len(events(runtime))
    response = post(
        client,
        f"/v1/assignments/{assignment_id}/transfer",
        GUOKENG,
        {"to_unit": "lw-buwen", "reason": "属步文镇"},
    )
    assert response.status_code == 200 and response.get_json()["status"] == "transferred"
    published = events(runtime)[mark:]
    assert [key for key, _ in published] == ["assignment.transferred", "case.routed"]
    assert published[0][1]["to_unit"] == "lw-buwen" and published[0][1]["reason"] == "属步文镇"
    now = current(runtime, assignment_id)
    assert now.unit == "lw-buwen" and now.moves == 1
    inbox = client.get("/v1/assignments", headers=BUWEN).get_json()
    assert [item["assignment_id"] for item in inbox["items"]] == [now.id]


@pytest.mark.parametrize(
    ("to_unit", "field"),
    [("nowhere", "to_unit"), ("lw-guokeng", "to_unit")],
)
def test_a_transfer_to_an_unknown_unit_or_to_itself_is_refused(client, signed_over, to_unit, field):
    assignment_id = signed_over()
    response = post(
        client,
        f"/v1/assignments/{assignment_id}/transfer",
        GUOKENG,
        {"to_unit": to_unit, "reason": "r"},
    )
    assert response.status_code == 422
    assert field in response.get_json()["errors"]["json"]


def test_a_transfer_to_the_accused_or_its_subtree_is_refused(client, runtime, signed_over):
    # Accuses 龙文区 but was signed over to the city's land bureau, outside lw's subtree.
    assignment_id = signed_over(
        accused={"unit": "lw", "person": None},
        disposition={"action": "sign_over", "unit": "city-land"},
    )
    land = bearer("city-land", "partner")
    mark = len(events(runtime))
    for target in ("lw", "lw-guokeng"):
        response = post(
            client,
            f"/v1/assignments/{assignment_id}/transfer",
            land,
            {"to_unit": target, "reason": "r"},
        )
        assert response.status_code == 409
        assert "accuses 'lw'" in response.get_json()["message"]
    assert keys_after(runtime, mark) == []
    assert current(runtime, assignment_id).unit == "city-land"


def test_bouncing_past_the_limit_goes_to_arbitration(client, runtime, signed_over, monkeypatch):
    monkeypatch.setenv("ROUTING_MAX_MOVES", "2")
    first = signed_over()
    post(
        client, f"/v1/assignments/{first}/transfer", GUOKENG, {"to_unit": "lw-buwen", "reason": "a"}
    )
    second = current(runtime, first).id
    post(
        client,
        f"/v1/assignments/{second}/transfer",
        BUWEN,
        {"to_unit": "lw-guokeng", "reason": "b"},
    )
    third = current(runtime, first).id
    mark = len(events(runtime))
    response = post(client, f"/v1/assignments/{third}/return", GUOKENG, {"reason": "c"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "arbitration" and body["supervising_unit"] == "lw"
    published = events(runtime)[mark:]
    assert [key for key, _ in published] == ["assignment.arbitration_requested"]
    assert published[0][1]["supervising_unit"] == "lw"
    # Nothing more bounces it: the partner waits for the decision.
    blocked = post(client, f"/v1/assignments/{third}/accept", GUOKENG)
    assert blocked.status_code == 409 and "arbitration" in blocked.get_json()["message"]

    decision = {"unit": "lw-guokeng", "reason": "属郭坑镇"}
    other = bearer("xc", "supervisor")
    # Another county's supervisor: as if the assignment did not exist.
    assert post(client, f"/v1/assignments/{third}/arbitration", other, decision).status_code == 404
    assert (
        post(client, f"/v1/assignments/{third}/arbitration", GUOKENG, decision).status_code == 403
    )
    mark = len(events(runtime))
    response = post(
        client, f"/v1/assignments/{third}/arbitration", bearer("lw", "supervisor"), decision
    )
    assert response.status_code == 200, response.get_json()
    decided = current(runtime, first)
    assert decided.unit == "lw-guokeng" and decided.status == "assigned" and decided.moves == 0
    assert keys_after(runtime, mark) == ["case.routed"]
    again = post(client, f"/v1/assignments/{third}/arbitration", ADMIN, decision)
    assert again.status_code == 409


def test_arbitration_never_hands_the_case_to_the_accused(client, runtime, signed_over, monkeypatch):
    monkeypatch.setenv("ROUTING_MAX_MOVES", "0")
    assignment_id = signed_over(
        accused={"unit": "lw-buwen", "person": None},
        disposition={"action": "sign_over", "unit": "lw-guokeng"},
    )
    post(client, f"/v1/assignments/{assignment_id}/return", GUOKENG, {"reason": "x"})
    response = post(
        client,
        f"/v1/assignments/{assignment_id}/arbitration",
        bearer("lw", "supervisor"),
        {"unit": "lw-buwen", "reason": "y"},
    )
    assert response.status_code == 409 and "accuses 'lw-buwen'" in response.get_json()["message"]


# -- extensions ----------------------------------------------------------------------------------


def test_the_first_short_extension_is_granted_by_policy(client, runtime, signed_over):
    assignment_id = signed_over()
    before = current(runtime, assignment_id).due_at
    mark = len(events(runtime))
    response = post(
        client,
        f"/v1/assignments/{assignment_id}/extension",
        GUOKENG,
        {"days": 10, "reason": "待鉴定"},
    )
    body = response.get_json()
    assert response.status_code == 200 and body["granted"] is True
    after = current(runtime, assignment_id).due_at
    assert (after - before).days == 10
    [(key, data)] = events(runtime)[mark:]
    assert key == "assignment.extension_granted"
    assert data["granted_by"] == "policy" and data["due_at"] == after.isoformat()
    # The second one waits for the supervising unit (龙文区).
    response = post(
        client, f"/v1/assignments/{assignment_id}/extension", GUOKENG, {"days": 5, "reason": "再延"}
    )
    assert response.status_code == 200 and response.get_json()["granted"] is False
    assert response.get_json()["assignment"]["extension_days"] == 5
    twice = post(
        client, f"/v1/assignments/{assignment_id}/extension", GUOKENG, {"days": 5, "reason": "x"}
    )
    assert twice.status_code == 409
    decision = {"grant": True, "reason": "同意"}
    path = f"/v1/assignments/{assignment_id}/extension/decision"
    assert post(client, path, bearer("xc", "supervisor"), decision).status_code == 404
    response = post(client, path, bearer("lw", "supervisor"), decision)
    assert response.status_code == 200, response.get_json()
    assert (current(runtime, assignment_id).due_at - after).days == 5
    assert keys_after(runtime, mark) == [
        "assignment.extension_granted",
        "assignment.extension_granted",
    ]


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("return", {}, "reason"),
        ("return", {"reason": "   "}, "reason"),
        ("return", {"reason": "x" * 501}, "reason"),
        ("return", {"reason": "r", "extra": 1}, "extra"),
        ("transfer", {"reason": "r"}, "to_unit"),
        ("transfer", {"to_unit": "BAD CODE", "reason": "r"}, "to_unit"),
        ("progress", {"note": 5}, "note"),
        ("resolve", {"answer": ""}, "answer"),
        ("extension", {"days": 0, "reason": "r"}, "days"),
        ("extension", {"days": "5", "reason": "r"}, "days"),
        ("extension", {"days": 91, "reason": "r"}, "days"),
    ],
)
def test_bad_bodies_are_refused_field_by_field(client, signed_over, action, body, field):
    assignment_id = signed_over()
    response = post(client, f"/v1/assignments/{assignment_id}/{action}", GUOKENG, body)
    assert response.status_code == 422
    assert field in response.get_json()["errors"]["json"]


def test_actions_on_unknown_or_malformed_ids_are_404(client):
    assert post(client, "/v1/assignments/not-a-uuid/accept", GUOKENG).status_code == 404
    missing = "00000000-0000-4000-8000-000000000000"
    assert post(client, f"/v1/assignments/{missing}/accept", GUOKENG).status_code == 404


def test_a_non_json_body_is_refused(client, signed_over):
    assignment_id = signed_over()
    response = client.post(
        f"/v1/assignments/{assignment_id}/return",
        headers={**GUOKENG, "Content-Type": "text/plain"},
        data="reason",
    )
    assert 400 <= response.status_code < 500


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("arbitration", {"reason": "r"}, "unit"),
        ("arbitration", {"unit": "lw", "reason": ""}, "reason"),
        ("arbitration", {"unit": "lw", "reason": "r", "force": True}, "force"),
        ("extension/decision", {"reason": "r"}, "grant"),
        ("extension/decision", {"grant": "perhaps", "reason": "r"}, "grant"),
        ("extension/decision", {"grant": True, "reason": "r", "days": 365}, "days"),
    ],
)
def test_bad_supervisor_bodies_are_refused_field_by_field(client, signed_over, action, body, field):
    assignment_id = signed_over()
    response = post(client, f"/v1/assignments/{assignment_id}/{action}", ADMIN, body)
    assert response.status_code == 422
    assert field in response.get_json()["errors"]["json"]


def test_supervisor_decisions_without_anything_pending_are_conflicts(client, signed_over):
    assignment_id = signed_over()
    supervisor = bearer("lw", "supervisor")
    arbitration = {"unit": "lw-buwen", "reason": "r"}
    response = post(client, f"/v1/assignments/{assignment_id}/arbitration", supervisor, arbitration)
    assert (
        response.status_code == 409 and "not awaiting arbitration" in response.get_json()["message"]
    )
    decision = {"grant": True, "reason": "r"}
    response = post(
        client, f"/v1/assignments/{assignment_id}/extension/decision", supervisor, decision
    )
    assert response.status_code == 409
    # Partners do not decide: the role is refused before anything is looked up.
    assert (
        post(
            client, f"/v1/assignments/{assignment_id}/arbitration", GUOKENG, arbitration
        ).status_code
        == 403
    )


def test_a_supervisor_of_another_area_learns_nothing_of_an_assignment(client, signed_over):
    # Regression (proof suite, authorisation): the state was checked before the
    # jurisdiction, so xc's supervisor got 409 "the assignment is assigned" for lw's case.
    assignment_id = signed_over()
    other = bearer("xc", "supervisor")
    for action, body in (
        ("arbitration", {"unit": "xc-zhishan", "reason": "r"}),
        ("extension/decision", {"grant": True, "reason": "r"}),
    ):
        response = post(client, f"/v1/assignments/{assignment_id}/{action}", other, body)
        assert response.status_code == 404, response.get_json()
        assert "assigned" not in response.get_json()["message"]


# -- co-handling (协办) --------------------------------------------------------------------------


def test_a_lead_unit_asks_another_to_co_handle(client, runtime, signed_over):
    assignment_id = signed_over()
    mark = len(events(runtime))
    response = post(
        client,
        f"/v1/assignments/{assignment_id}/co-handlers",
        GUOKENG,
        {"unit": "lw-buwen", "reason": "医保站在步文"},
    )
    assert response.status_code == 201, response.get_json()
    co = response.get_json()
    assert co["role"] == "co" and co["unit"] == "lw-buwen" and co["status"] == "assigned"
    lead = client.get(f"/v1/assignments/{assignment_id}", headers=GUOKENG).get_json()
    assert co["due_at"] == lead["due_at"] and lead["superseded_by"] is None
    [(key, data)] = events(runtime)[mark:]
    assert key == "case.routed" and data["role"] == "co" and data["unit"] == "lw-buwen"
    partner = [key for key, _ in events(runtime, "nighttalk.partners")]
    assert partner[-1] == "lw-buwen.case.routed"
    # The co-handler works its part; it may not move the case or extend it.
    co_id = co["assignment_id"]
    assert post(client, f"/v1/assignments/{co_id}/accept", BUWEN).status_code == 200
    for action, body in (
        ("transfer", {"to_unit": "lw", "reason": "x"}),
        ("extension", {"days": 5, "reason": "x"}),
        ("co-handlers", {"unit": "lw-org", "reason": "x"}),
    ):
        response = post(client, f"/v1/assignments/{co_id}/{action}", BUWEN, body)
        assert response.status_code == 409 and "co-handling" in response.get_json()["message"]
    assert (
        post(client, f"/v1/assignments/{co_id}/return", BUWEN, {"reason": "非我"}).status_code
        == 200
    )
    # Declining its part leaves the lead where it was.
    lead = client.get(f"/v1/assignments/{assignment_id}", headers=GUOKENG).get_json()
    assert lead["status"] == "assigned" and lead["unit"] == "lw-guokeng"
    twice = post(
        client,
        f"/v1/assignments/{assignment_id}/co-handlers",
        GUOKENG,
        {"unit": "lw", "reason": "r"},
    )
    assert twice.status_code == 201
    again = post(
        client,
        f"/v1/assignments/{assignment_id}/co-handlers",
        GUOKENG,
        {"unit": "lw", "reason": "r"},
    )
    assert again.status_code == 409


def test_every_assignment_event_says_whose_part_it_is(client, runtime, signed_over):
    """A co-handler's answer (协办) is its part, not the case's: its events say role "co"."""
    lead_id = signed_over()
    response = post(
        client,
        f"/v1/assignments/{lead_id}/co-handlers",
        GUOKENG,
        {"unit": "lw-buwen", "reason": "医保站在步文"},
    )
    co_id = response.get_json()["assignment_id"]
    second = post(
        client, f"/v1/assignments/{lead_id}/co-handlers", GUOKENG, {"unit": "lw", "reason": "r"}
    )
    declined_id = second.get_json()["assignment_id"]
    mark = len(events(runtime))
    partner_mark = len(events(runtime, "nighttalk.partners"))
    lw = bearer("lw", "partner")
    for path, headers, body in (
        (f"{co_id}/accept", BUWEN, None),
        (f"{co_id}/progress", BUWEN, {"note": "材料已转交"}),
        (f"{co_id}/resolve", BUWEN, {"answer": "步文镇部分：材料已转交"}),
        (f"{declined_id}/return", lw, {"reason": "非我区之事"}),
        (f"{lead_id}/accept", GUOKENG, None),
        (f"{lead_id}/extension", GUOKENG, {"days": 5, "reason": "待鉴定"}),
        (f"{lead_id}/resolve", GUOKENG, {"answer": "已报销"}),
    ):
        response = post(client, f"/v1/assignments/{path}", headers, body)
        assert response.status_code == 200, (path, response.get_json())
    said = [(key, data["assignment_id"], data["role"]) for key, data in events(runtime)[mark:]]
    assert said == [
        ("assignment.accepted", co_id, "co"),
        ("assignment.progressed", co_id, "co"),
        ("assignment.resolved", co_id, "co"),
        ("assignment.returned", declined_id, "co"),
        ("assignment.accepted", lead_id, "lead"),
        ("assignment.extension_granted", lead_id, "lead"),
        ("assignment.resolved", lead_id, "lead"),
    ]
    # The partners' copies carry it too.
    copies = [
        (key, data["role"]) for key, data in events(runtime, "nighttalk.partners")[partner_mark:]
    ]
    assert copies == [
        ("lw-buwen.assignment.accepted", "co"),
        ("lw-guokeng.assignment.accepted", "lead"),
        ("lw-guokeng.assignment.extension_granted", "lead"),
    ]


def test_a_transfer_and_a_supervisor_s_extension_say_the_lead_s_role(client, runtime, signed_over):
    lead_id = signed_over()
    post(client, f"/v1/assignments/{lead_id}/extension", GUOKENG, {"days": 5, "reason": "a"})
    post(client, f"/v1/assignments/{lead_id}/extension", GUOKENG, {"days": 5, "reason": "b"})
    mark = len(events(runtime))
    decision = {"grant": True, "reason": "同意"}
    path = f"/v1/assignments/{lead_id}/extension/decision"
    assert post(client, path, bearer("lw", "supervisor"), decision).status_code == 200
    transfer = {"to_unit": "lw-buwen", "reason": "属步文镇"}
    assert post(client, f"/v1/assignments/{lead_id}/transfer", GUOKENG, transfer).status_code == 200
    said = [(key, data.get("role")) for key, data in events(runtime)[mark:]]
    assert said == [
        ("assignment.extension_granted", "lead"),
        ("assignment.transferred", "lead"),
        ("case.routed", "lead"),
    ]


@pytest.mark.parametrize(
    ("unit", "status"), [("lw-guokeng", 422), ("nowhere", 422), ("lw-buwen", 409)]
)
def test_co_handlers_are_checked(client, signed_over, unit, status):
    # The case accuses 步文镇: it may not co-handle either.
    assignment_id = signed_over(accused={"unit": "lw-buwen", "person": None})
    response = post(
        client,
        f"/v1/assignments/{assignment_id}/co-handlers",
        GUOKENG,
        {"unit": unit, "reason": "r"},
    )
    assert response.status_code == status
    assert (
        post(
            client,
            f"/v1/assignments/{assignment_id}/co-handlers",
            BUWEN,
            {"unit": "lw", "reason": "r"},
        ).status_code
        == 404
    )
