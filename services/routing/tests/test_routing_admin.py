"""The admin API: units (add, change, retire) with unit.changed, and routing rules."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select

from eventbus import testing
from routing import models
from servicekit.auth import mint


def bearer(unit: str, *roles: str, key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {mint(unit, list(roles))}"}
    if key:
        headers["Idempotency-Key"] = key
    return headers


ADMIN = bearer("city-org", "admin")


def unit_events(runtime) -> list[dict]:
    table = models.metadata.tables["outbox"]
    with runtime.engine.connect() as conn:
        rows = conn.execute(
            select(table).where(table.c.routing_key == "unit.changed").order_by(table.c.position)
        )
        return [(row.headers["ce-subject"], json.loads(row.body)) for row in rows]


NEW_TOWN = {"code": "lw-lantian", "name": "蓝田镇", "level": "township", "parent": "lw"}


# -- units ---------------------------------------------------------------------------------------


def test_an_admin_adds_a_unit_and_it_is_announced(client, runtime):
    response = client.post("/v1/units", headers=ADMIN, json=NEW_TOWN)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["area"] == "lw" and body["revision"] == 1 and body["active"] is True
    [(subject, data)] = unit_events(runtime)
    assert subject == "lw-lantian"
    assert data == {
        "code": "lw-lantian",
        "name": "蓝田镇",
        "level": "township",
        "parent": "lw",
        "area": "lw",
        "leader": None,
        "active": True,
        "revision": 1,
    }
    assert client.get("/v1/units/lw-lantian", headers=ADMIN).get_json()["name"] == "蓝田镇"


def test_a_retried_post_with_the_same_key_adds_once(client, runtime):
    headers = bearer("city-org", "admin", key="add-lantian-1")
    first = client.post("/v1/units", headers=headers, json=NEW_TOWN)
    again = client.post("/v1/units", headers=headers, json=NEW_TOWN)
    assert first.status_code == again.status_code == 201
    assert first.get_json() == again.get_json()
    assert len(unit_events(runtime)) == 1
    other = client.post("/v1/units", headers=headers, json={**NEW_TOWN, "name": "别的"})
    assert other.status_code == 422 and "Idempotency-Key" in other.get_json()["errors"]["headers"]
    # Without the key, the same request is a conflict: the code is taken.
    assert client.post("/v1/units", headers=ADMIN, json=NEW_TOWN).status_code == 409


def test_changes_bump_the_revision_and_are_announced(client, runtime):
    response = client.patch("/v1/units/lw-buwen", headers=ADMIN, json={"leader": "林镇长"})
    assert response.status_code == 200 and response.get_json()["revision"] == 2
    response = client.patch("/v1/units/lw-buwen", headers=ADMIN, json={"active": False})
    assert response.get_json()["revision"] == 3 and response.get_json()["active"] is False
    # The same values again change nothing and announce nothing.
    client.patch("/v1/units/lw-buwen", headers=ADMIN, json={"active": False})
    revisions = [(s, d["revision"], d["leader"], d["active"]) for s, d in unit_events(runtime)]
    assert revisions == [("lw-buwen", 2, "林镇长", True), ("lw-buwen", 3, "林镇长", False)]


def test_the_default_unit_and_a_unit_rules_name_cannot_be_retired(client):
    response = client.patch("/v1/units/city-gov-office", headers=ADMIN, json={"active": False})
    assert response.status_code == 409 and "default unit" in response.get_json()["message"]
    rule = client.post(
        "/v1/rules", headers=ADMIN, json={"category": "land", "area": "*", "unit": "city-land"}
    ).get_json()
    response = client.patch("/v1/units/city-land", headers=ADMIN, json={"active": False})
    assert response.status_code == 409 and rule["rule_id"] in response.get_json()["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**NEW_TOWN, "parent": "nowhere"}, "parent"),
        ({**NEW_TOWN, "parent": "city"}, "parent"),
        ({**NEW_TOWN, "area": "xc"}, "area"),
        ({**NEW_TOWN, "level": "village"}, "level"),
        ({**NEW_TOWN, "code": "Bad Code"}, "code"),
        ({**NEW_TOWN, "name": ""}, "name"),
        ({**NEW_TOWN, "surprise": 1}, "surprise"),
        ({k: v for k, v in NEW_TOWN.items() if k != "parent"}, "parent"),
    ],
)
def test_bad_units_are_refused_field_by_field(client, runtime, body, field):
    response = client.post("/v1/units", headers=ADMIN, json=body)
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["errors"]["json"]
    assert unit_events(runtime) == []


@pytest.mark.parametrize("body", [{}, {"revision": 9}, {"active": "maybe"}, {"parent": "xc"}])
def test_bad_unit_changes_are_refused(client, body):
    response = client.patch("/v1/units/lw-buwen", headers=ADMIN, json=body)
    assert response.status_code == 422


def test_only_admins_change_the_directory(client):
    for roles in (("partner",), ("supervisor",), ("reception",)):
        headers = bearer("lw", *roles)
        assert client.post("/v1/units", headers=headers, json=NEW_TOWN).status_code == 403
        assert (
            client.patch("/v1/units/lw", headers=headers, json={"leader": "x"}).status_code == 403
        )
    assert client.patch("/v1/units/nowhere", headers=ADMIN, json={"leader": "x"}).status_code == 404


# -- rules ---------------------------------------------------------------------------------------


def add_rule(client, **body):
    return client.post("/v1/rules", headers=ADMIN, json=body)


def route(deliver, case_data, case_registered, runtime, **changes) -> models.Assignment:
    data = case_data(disposition={"action": "route"}, **changes)
    deliver(case_registered(data))
    with runtime.sessions() as session:
        return session.scalars(
            select(models.Assignment).where(models.Assignment.case_id == data["case_id"])
        ).one()


def test_the_most_specific_rule_wins(client, runtime, deliver, case_data, case_registered):
    assert add_rule(client, category="*", area="*", unit="city-letters").status_code == 422
    assert add_rule(client, category="*", area="*", unit="city-party-office").status_code == 201
    assert add_rule(client, category="*", area="lw", unit="lw").status_code == 201
    assert add_rule(client, category="land", area="*", unit="city-land").status_code == 201
    response = add_rule(client, category="land", area="lw", unit="lw-org", due_days=10)
    assert response.status_code == 201
    # Received by 郭坑镇 (area lw) or by the city's organisation department (area city).
    at_lw = {"unit": "lw-guokeng"}
    assert route(deliver, case_data, case_registered, runtime, category="land", **at_lw).unit == (
        "lw-org"
    )
    lw_land = route(deliver, case_data, case_registered, runtime, category="land", **at_lw)
    assert (lw_land.due_at - lw_land.routed_at).days == 10
    assert route(deliver, case_data, case_registered, runtime, category="land").unit == "city-land"
    assert route(
        deliver, case_data, case_registered, runtime, category="policing", **at_lw
    ).unit == ("lw")
    other = route(deliver, case_data, case_registered, runtime, category="policing")
    assert other.unit == "city-party-office" and other.reason == "rule */*"


def test_without_rules_the_default_unit_takes_the_case(
    runtime, deliver, case_data, case_registered
):
    assignment = route(deliver, case_data, case_registered, runtime, category="land")
    assert assignment.unit == "city-gov-office"


def test_a_rule_never_sends_a_complaint_to_the_accused(
    client, runtime, deliver, case_data, case_registered
):
    add_rule(client, category="land", area="lw", unit="lw-guokeng")
    assignment = route(
        deliver,
        case_data,
        case_registered,
        runtime,
        category="land",
        unit="lw-buwen",
        accused={"unit": "lw-guokeng", "person": None},
    )
    assert assignment.unit == "lw" and assignment.confidential is True


def test_rules_are_changed_read_and_deleted(client):
    created = add_rule(client, category="land", area="xc", unit="xc").get_json()
    rule_id = created["rule_id"]
    assert add_rule(client, category="land", area="xc", unit="xc-org").status_code == 409
    changed = client.patch(f"/v1/rules/{rule_id}", headers=ADMIN, json={"unit": "xc-org"})
    assert changed.status_code == 200 and changed.get_json()["unit"] == "xc-org"
    listed = client.get("/v1/rules?area=xc", headers=bearer("lw", "supervisor")).get_json()
    assert [r["rule_id"] for r in listed["items"]] == [rule_id]
    assert client.delete(f"/v1/rules/{rule_id}", headers=ADMIN).status_code == 204
    assert client.get(f"/v1/rules/{rule_id}", headers=ADMIN).status_code == 404
    assert client.get("/v1/rules", headers=bearer("lw", "partner")).status_code == 403


def test_a_rule_may_not_point_at_an_inactive_unit(client):
    client.patch("/v1/units/ds-xipu", headers=ADMIN, json={"active": False})
    response = add_rule(client, category="land", area="ds", unit="ds-xipu")
    assert (
        response.status_code == 422
        and "inactive" in response.get_json()["errors"]["json"]["unit"][0]
    )
    rule_id = add_rule(client, category="land", area="ds", unit="ds").get_json()["rule_id"]
    response = client.patch(f"/v1/rules/{rule_id}", headers=ADMIN, json={"unit": "ds-xipu"})
    assert response.status_code == 422


def test_a_retried_rule_post_adds_once(client):
    headers = bearer("city-org", "admin", key=str(uuid.uuid4()))
    body = {"category": "land", "area": "lw", "unit": "lw"}
    first = client.post("/v1/rules", headers=headers, json=body)
    again = client.post("/v1/rules", headers=headers, json=body)
    assert first.status_code == again.status_code == 201
    assert first.get_json() == again.get_json()
    assert client.get("/v1/rules", headers=ADMIN).get_json()["total"] == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"category": "Land!", "area": "*", "unit": "lw"}, "category"),
        ({"category": "land", "area": "nowhere", "unit": "lw"}, "area"),
        ({"category": "land", "area": "*", "unit": "nowhere"}, "unit"),
        ({"category": "land", "area": "*", "unit": "lw", "due_days": 0}, "due_days"),
        ({"category": "land", "area": "*", "unit": "lw", "priority": 1}, "priority"),
        ({"area": "*", "unit": "lw"}, "category"),
    ],
)
def test_bad_rules_are_refused_field_by_field(client, body, field):
    response = client.post("/v1/rules", headers=ADMIN, json=body)
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["errors"]["json"]


@pytest.mark.parametrize("path", ["/v1/rules/not-a-uuid", f"/v1/rules/{uuid.uuid4()}"])
def test_unknown_rules_are_404(client, path):
    assert client.get(path, headers=ADMIN).status_code == 404
    assert client.patch(path, headers=ADMIN, json={"unit": "lw"}).status_code == 404
    assert client.delete(path, headers=ADMIN).status_code == 404


def test_bad_rule_queries_are_refused(client):
    assert client.get("/v1/rules?page_size=500", headers=ADMIN).status_code == 422
    assert client.get("/v1/rules?sort=x", headers=ADMIN).status_code == 422


def test_the_reads_end_in_commit(client, app, deliver, case_data, case_registered):
    """So that psycopg keeps the statements it prepared (it forgets them at a ROLLBACK)."""
    deliver(case_registered(case_data()))  # signed over to 郭坑镇
    rule_id = add_rule(client, category="land", area="xc", unit="xc").get_json()["rule_id"]
    reads = [
        ("/v1/units?level=township", ADMIN),
        ("/v1/units/lw-buwen", ADMIN),
        ("/v1/rules", ADMIN),
        (f"/v1/rules/{rule_id}", ADMIN),
        ("/v1/inbox", bearer("lw-guokeng", "partner")),
    ]
    with testing.transaction_endings(app.extensions["runtime"].engine) as endings:
        answers = []
        for path, headers in reads:
            response = client.get(path, headers=headers)
            assert response.status_code == 200, (path, response.get_json())
            answers.append(response.get_json())

    assert endings == ["commit"] * len(reads)
    assert len(answers[-1]["items"]) == 1  # the partner's inbox read its assignment
