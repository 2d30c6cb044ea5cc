"""routing's HTTP API with the Flask test client, on a real database."""

from __future__ import annotations

import uuid

import pytest

from routing.app import create_app
from servicekit.auth import mint


@pytest.fixture
def app(runtime, database):
    app = create_app({"DATABASE_URL": database, "TESTING": True})
    yield app
    app.extensions["runtime"].close()


@pytest.fixture
def client(app):
    return app.test_client()


def bearer(unit: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(unit, list(roles))}"}


@pytest.fixture
def routed(deliver, case_data, case_registered):
    """Route three cases: two to 郭坑镇 (signed over), one to the default unit."""
    cases = [
        case_data(case_number="city-org-20261215-0001"),
        case_data(case_number="city-org-20261215-0002"),
        case_data(case_number="city-org-20261215-0003", disposition={"action": "route"}),
    ]
    for data in cases:
        deliver(case_registered(data))
    return cases


def ids_of(body) -> set[str]:
    return {item["case_number"] for item in body["items"]}


# -- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/v1/assignments", f"/v1/assignments/{uuid.uuid4()}", "/v1/units", "/v1/units/lw"]
)
def test_every_resource_needs_a_token(client, path):
    response = client.get(path)
    assert response.status_code == 401
    assert "bearer" in response.get_json()["message"]
    forged = mint("lw-guokeng", ["partner"], key="another-secret-of-sufficient-length-0123")
    assert client.get(path, headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_reception_desks_do_not_read_assignments(client):
    response = client.get("/v1/assignments", headers=bearer("city-org", "reception"))
    assert response.status_code == 403


# -- assignments -----------------------------------------------------------------------------


def test_a_partner_lists_only_its_own_units_assignments(client, routed):
    body = client.get("/v1/assignments", headers=bearer("lw-guokeng", "partner")).get_json()
    assert ids_of(body) == {"city-org-20261215-0001", "city-org-20261215-0002"}
    assert body["total"] == 2 and body["page"] == 1 and body["page_size"] == 20
    assert {item["unit"] for item in body["items"]} == {"lw-guokeng"}
    item = body["items"][0]
    assert set(item) == {
        "assignment_id",
        "case_id",
        "case_number",
        "unit",
        "role",
        "status",
        "routed_at",
        "due_at",
        "category",
        "summary",
        "details",
        "location",
        "receiving_unit",
        "channel",
        "accused_unit",
        "confidential",
        "reason",
        "superseded_by",
        "moves",
        "supervising_unit",
        "accepted_at",
        "resolved_at",
        "answer",
        "extensions",
        "extension_days",
    }
    body = client.get("/v1/assignments", headers=bearer("lw-buwen", "partner")).get_json()
    assert body == {"items": [], "page": 1, "page_size": 20, "total": 0, "total_exact": True}


@pytest.mark.parametrize("role", ["admin", "supervisor"])
def test_admins_and_supervisors_list_all_assignments(client, routed, role):
    body = client.get("/v1/assignments", headers=bearer("city-org", role)).get_json()
    assert body["total"] == 3 and len(body["items"]) == 3


def test_assignments_filter_by_case_number_and_status(client, routed):
    admin = bearer("city-org", "admin")
    body = client.get(
        "/v1/assignments?case_number=city-org-20261215-0003", headers=admin
    ).get_json()
    assert ids_of(body) == {"city-org-20261215-0003"}
    assert body["items"][0]["unit"] == "city-gov-office"
    body = client.get("/v1/assignments?status=assigned", headers=admin).get_json()
    assert body["total"] == 3


def test_a_nul_in_a_filter_is_refused_naming_it(client, routed):
    # PostgreSQL takes no NUL in a query's text: this was a 500 (the bad-input proof).
    response = client.get(
        "/v1/assignments?case_number=city%00org", headers=bearer("city-org", "admin")
    )
    assert response.status_code == 422
    assert list(response.get_json()["errors"]["query"]) == ["case_number"]


def test_assignments_come_in_pages(client, routed):
    admin = bearer("city-org", "admin")
    first = client.get("/v1/assignments?page_size=2", headers=admin).get_json()
    second = client.get("/v1/assignments?page_size=2&page=2", headers=admin).get_json()
    assert len(first["items"]) == 2 and len(second["items"]) == 1
    assert first["total"] == second["total"] == 3
    assert ids_of(first) | ids_of(second) == {c["case_number"] for c in routed}
    beyond = client.get("/v1/assignments?page=9", headers=admin).get_json()
    assert beyond["items"] == [] and beyond["total"] == 3


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("page_size=101", "page_size"),
        ("page_size=0", "page_size"),
        ("page=0", "page"),
        ("page=abc", "page"),
        ("status=done", "status"),
        ("case_number=" + "x" * 91, "case_number"),
        ("unit=lw", "unit"),
        ("sort=routed_at", "sort"),
    ],
)
def test_bad_query_arguments_are_refused_field_by_field(client, query, field):
    response = client.get(f"/v1/assignments?{query}", headers=bearer("city-org", "admin"))
    assert response.status_code == 422
    assert field in response.get_json()["errors"]["query"]


def test_a_partner_reads_its_own_assignment(client, routed):
    headers = bearer("lw-guokeng", "partner")
    listed = client.get("/v1/assignments", headers=headers).get_json()["items"][0]
    response = client.get(f"/v1/assignments/{listed['assignment_id']}", headers=headers)
    assert response.status_code == 200
    assert response.get_json() == listed


def test_another_units_assignment_is_not_found(client, routed):
    admin = bearer("city-org", "admin")
    listed = client.get(
        "/v1/assignments?case_number=city-org-20261215-0001", headers=admin
    ).get_json()["items"][0]
    path = f"/v1/assignments/{listed['assignment_id']}"
    response = client.get(path, headers=bearer("lw-buwen", "partner"))
    assert response.status_code == 404
    assert client.get(path, headers=bearer("city-org", "supervisor")).status_code == 200


@pytest.mark.parametrize("ref", [str(uuid.uuid4()), "not-a-uuid", "x" * 300])
def test_unknown_assignments_are_not_found(client, routed, ref):
    response = client.get(f"/v1/assignments/{ref}", headers=bearer("city-org", "admin"))
    assert response.status_code == 404


# -- units ----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["reception", "partner", "supervisor", "admin"])
def test_any_authenticated_caller_reads_the_directory(client, role):
    body = client.get("/v1/units?page_size=100", headers=bearer("lw-guokeng", role)).get_json()
    assert body["total"] == 34 and len(body["items"]) == 34
    codes = [u["code"] for u in body["items"]]
    assert codes == sorted(codes)


def test_units_filter_by_level_parent_and_area(client):
    headers = bearer("lw-guokeng", "partner")
    towns = client.get("/v1/units?level=township&parent=lw", headers=headers).get_json()
    assert [u["code"] for u in towns["items"]] == ["lw-buwen", "lw-guokeng"]
    area = client.get("/v1/units?area=xc", headers=headers).get_json()
    assert {u["code"] for u in area["items"]} == {"xc", "xc-org", "xc-zhishan", "xc-shiting"}
    inactive = client.get("/v1/units?active=false", headers=headers).get_json()
    assert inactive["total"] == 0


def test_a_unit_is_read_by_its_code(client):
    response = client.get("/v1/units/lw-buwen", headers=bearer("city-org", "reception"))
    assert response.status_code == 200
    assert response.get_json() == {
        "code": "lw-buwen",
        "name": "步文镇",
        "level": "township",
        "parent": "lw",
        "area": "lw",
        "leader": None,
        "active": True,
        "amqp": True,
        "revision": 1,
    }


@pytest.mark.parametrize("code", ["zz-nowhere", "x" * 100])
def test_an_unknown_unit_is_not_found(client, code):
    assert client.get(f"/v1/units/{code}", headers=bearer("city-org", "admin")).status_code == 404


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("level=province", "level"),
        ("parent=Bad Code", "parent"),
        ("active=maybe", "active"),
        ("page_size=1000", "page_size"),
        ("name=x", "name"),
    ],
)
def test_bad_unit_queries_are_refused(client, query, field):
    response = client.get(f"/v1/units?{query}", headers=bearer("city-org", "admin"))
    assert response.status_code == 422
    assert field in response.get_json()["errors"]["query"]


def test_the_api_is_described(client):
    spec = client.get("/openapi.json").get_json()
    for path in (
        "/v1/assignments",
        "/v1/assignments/{assignment_id}",
        "/v1/units",
        "/v1/units/{code}",
    ):
        assert path in spec["paths"]
    parameters = {p["name"] for p in spec["paths"]["/v1/assignments"]["get"]["parameters"]}
    assert {"status", "case_number", "page", "page_size"} <= parameters


def test_a_county_supervisor_sees_only_its_countys_assignments(client, routed):
    # Two cases with 郭坑镇 (龙文区), one with the city government office.
    lw = client.get("/v1/assignments", headers=bearer("lw", "supervisor")).get_json()
    assert {item["unit"] for item in lw["items"]} == {"lw-guokeng"} and lw["total"] == 2
    xc = client.get("/v1/assignments", headers=bearer("xc-org", "supervisor")).get_json()
    assert xc["total"] == 0
    city = client.get("/v1/assignments", headers=bearer("city-org", "supervisor")).get_json()
    assert city["total"] == 3
    outside = next(i for i in city["items"] if i["unit"] == "city-gov-office")
    path = f"/v1/assignments/{outside['assignment_id']}"
    assert client.get(path, headers=bearer("lw", "supervisor")).status_code == 404
    inside = next(i for i in city["items"] if i["unit"] == "lw-guokeng")
    path = f"/v1/assignments/{inside['assignment_id']}"
    assert client.get(path, headers=bearer("lw-org", "supervisor")).status_code == 200
    # A township governs itself, not the county's other townships.
    township = client.get("/v1/assignments", headers=bearer("lw-guokeng", "supervisor"))
    assert township.get_json()["total"] == 2
    other = client.get("/v1/assignments", headers=bearer("lw-buwen", "supervisor"))
    assert other.get_json()["total"] == 0
    assert client.get(path, headers=bearer("lw-buwen", "supervisor")).status_code == 404
