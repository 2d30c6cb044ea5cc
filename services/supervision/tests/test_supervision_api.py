"""``/v1/cases`` with the Flask test client: who sees which case, its due date, its timeline."""

from __future__ import annotations

import pytest
from supervision_samples import (
    ROUTED_DUE_AT,
    case_registered,
    case_resolved_on_spot,
    case_routed,
    consume,
    new_case,
    visit_followed_up,
)

from servicekit.auth import mint
from supervision.app import create_app


@pytest.fixture
def app(database_url):
    app = create_app({"DATABASE_URL": database_url, "TESTING": True})
    yield app
    app.extensions["runtime"].close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def routed_case(runtime):
    """A case received by city-org and routed to lw-buwen."""
    case_id, number = new_case()
    consume(runtime, case_registered(case_id, number, unit="city-org"))
    consume(
        runtime,
        case_routed(
            case_id,
            number,
            unit="lw-buwen",
            receiving_unit="city-org",
            assignment_id="assignment-1",
        ),
    )
    consume(runtime, visit_followed_up(case_id, number))
    return case_id, number


def bearer(unit: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(unit, list(roles))}"}


def test_without_a_token_the_case_is_refused(client, routed_case):
    _case_id, number = routed_case

    for path in (f"/v1/cases/{number}", f"/v1/cases/{number}/timeline"):
        response = client.get(path)
        assert response.status_code == 401
        assert "bearer" in response.json["message"]
    assert (
        client.get(f"/v1/cases/{number}", headers={"Authorization": "Bearer nonsense"}).status_code
        == 401
    )


def test_an_unknown_case_is_not_found(client, routed_case):
    admin = bearer("city-org", "admin")

    # A NUL names no case either (PostgreSQL refuses it in a text parameter: it was a 500).
    for ref in ("city-org-20260101-9999", "0" * 36, "x" * 500, "a%00b"):
        assert client.get(f"/v1/cases/{ref}", headers=admin).status_code == 404
        assert client.get(f"/v1/cases/{ref}/timeline", headers=admin).status_code == 404
        feedback = client.post(f"/v1/cases/{ref}/feedback", headers=admin, json={"satisfied": True})
        assert feedback.status_code == 404


def test_the_case_shows_routings_due_date_by_number_and_by_id(client, routed_case):
    case_id, number = routed_case

    for ref in (number, case_id):
        response = client.get(f"/v1/cases/{ref}", headers=bearer("city-org", "supervisor"))
        assert response.status_code == 200
        body = response.json
        assert body["case_id"] == case_id
        assert body["case_number"] == number
        assert body["status"] == "routed"
        assert body["receiving_unit"] == "city-org"
        assert body["responsible_unit"] == "lw-buwen"
        assert body["assignment_id"] == "assignment-1"
        assert body["due_at"] == ROUTED_DUE_AT.isoformat()


def test_no_due_date_before_routing_nor_for_a_case_resolved_on_spot(client, runtime):
    open_id, open_number = new_case()
    spot_id, spot_number = new_case()
    consume(runtime, case_registered(open_id, open_number))
    consume(runtime, case_registered(spot_id, spot_number, status="resolved_on_spot"))
    consume(runtime, case_resolved_on_spot(spot_id, spot_number))
    admin = bearer("city-org", "admin")

    opened = client.get(f"/v1/cases/{open_number}", headers=admin).json
    resolved = client.get(f"/v1/cases/{spot_number}", headers=admin).json

    assert (opened["status"], opened["due_at"], opened["registered"]) == ("open", None, True)
    assert (resolved["status"], resolved["due_at"]) == ("resolved_on_spot", None)


@pytest.mark.parametrize(
    ("unit", "roles", "status"),
    [
        ("city-org", ["reception"], 200),  # it received the case
        ("lw-buwen", ["partner"], 200),  # it must resolve the case
        ("lw-buwen", ["reception"], 200),
        ("xc", ["reception"], 404),  # another unit's case
        ("xc", ["partner"], 404),
        ("xc", ["supervisor"], 404),  # outside its jurisdiction (its own subtree)
        ("lw-buwen", ["supervisor"], 200),
        ("xc", ["admin"], 200),
    ],
)
def test_a_unit_sees_only_the_cases_it_received_or_must_resolve(
    client, routed_case, unit, roles, status
):
    _case_id, number = routed_case
    headers = bearer(unit, *roles)

    assert client.get(f"/v1/cases/{number}", headers=headers).status_code == status
    assert client.get(f"/v1/cases/{number}/timeline", headers=headers).status_code == status


def test_another_units_case_looks_exactly_like_an_unknown_one(client, routed_case):
    _case_id, number = routed_case
    headers = bearer("xc", "reception")

    hidden = client.get(f"/v1/cases/{number}", headers=headers)
    unknown = client.get("/v1/cases/xc-20260101-9999", headers=headers)

    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json == unknown.json


def test_the_timeline_lists_the_events_in_the_order_they_happened(client, routed_case):
    case_id, number = routed_case

    response = client.get(f"/v1/cases/{number}/timeline", headers=bearer("city-org", "reception"))

    assert response.status_code == 200
    body = response.json
    assert (body["case_id"], body["case_number"], body["truncated"]) == (case_id, number, False)
    assert [e["type"] for e in body["entries"]] == [
        "case.registered",
        "case.routed",
        "visit.followed_up",
    ]
    routed = body["entries"][1]
    assert routed["summary"]["due_at"] == ROUTED_DUE_AT.isoformat()
    assert set(routed) == {"event_id", "type", "occurred_at", "recorded_at", "summary"}
    assert "visitor_ref" not in body["entries"][0]["summary"]


def test_unknown_query_arguments_are_refused(client, routed_case):
    _case_id, number = routed_case
    admin = bearer("city-org", "admin")

    for path in (f"/v1/cases/{number}?expand=all", f"/v1/cases/{number}/timeline?page=2"):
        response = client.get(path, headers=admin)
        assert response.status_code == 422
        assert response.json["errors"]["query"]


def test_the_api_is_described_in_openapi(client):
    paths = client.get("/openapi.json").json["paths"]

    assert {"/v1/cases/{ref}", "/v1/cases/{ref}/timeline"} <= set(paths)
