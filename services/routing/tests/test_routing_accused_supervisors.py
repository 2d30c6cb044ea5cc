"""A complaint is kept from the supervisors of the unit it accuses and of the units above
it, as it is kept from their partners: they neither read, list, arbitrate nor decide it."""

from __future__ import annotations

from sqlalchemy import select

from routing import models
from servicekit.auth import mint


def bearer(unit: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(unit, list(roles), sub=f'{unit}:clerk')}"}


def route(runtime, deliver, case_data, case_registered, **changes) -> models.Assignment:
    data = case_data(**changes)
    deliver(case_registered(data))
    with runtime.sessions() as session:
        assignment = session.scalars(
            select(models.Assignment).where(models.Assignment.case_id == data["case_id"])
        ).one()
        session.expunge(assignment)
    return assignment


def reads(client, assignment_id: str, headers) -> tuple[int, int, list[str]]:
    """Return what a caller gets: the one assignment's status code, and the list's total
    and ids (a withheld complaint is neither in the page nor in its count)."""
    one = client.get(f"/v1/assignments/{assignment_id}", headers=headers).status_code
    page = client.get("/v1/assignments", headers=headers).get_json()
    return one, page["total"], [item["assignment_id"] for item in page["items"]]


def test_the_accused_county_departments_supervisor_cannot_read_the_complaint(
    client, runtime, deliver, case_data, case_registered
):
    complaint = route(
        runtime,
        deliver,
        case_data,
        case_registered,
        unit="lw-guokeng",
        accused={"unit": "lw-org", "person": "王某"},
        disposition={"action": "sign_over", "unit": "lw-org"},
        summary="举报区委组织部干部",
        details="反映王某收受红包",
    )
    assert complaint.unit == "lw" and complaint.confidential
    # Another case of the same county: lw-org's supervisor still sees its jurisdiction.
    other = route(
        runtime,
        deliver,
        case_data,
        case_registered,
        disposition={"action": "sign_over", "unit": "lw-buwen"},
    )

    accused = bearer("lw-org", "supervisor")
    one, total, ids = reads(client, complaint.id, accused)
    assert one == 404, "the accused unit's supervisor reads the complaint about it"
    assert (total, ids) == (1, [other.id])

    # The unit handling it, and the city's supervisors, still read it.
    for headers in (bearer("lw", "supervisor"), bearer("city-org", "supervisor")):
        one, total, ids = reads(client, complaint.id, headers)
        assert one == 200 and total == 2 and complaint.id in ids
    assert (
        client.get(f"/v1/assignments/{complaint.id}", headers=bearer("lw", "partner")).status_code
        == 200
    )


def test_the_accused_city_level_units_supervisor_neither_reads_nor_decides(
    client, runtime, deliver, case_data, case_registered, monkeypatch
):
    monkeypatch.setenv("ROUTING_MAX_MOVES", "0")
    complaint = route(
        runtime,
        deliver,
        case_data,
        case_registered,
        accused={"unit": "city-gov-office", "person": "张某"},
        disposition={"action": "sign_over", "unit": "city-police"},
    )
    accused = bearer("city-gov-office", "supervisor")
    one, total, ids = reads(client, complaint.id, accused)
    assert (one, total, ids) == (404, 0, [])
    police = bearer("city-police", "supervisor")
    assert reads(client, complaint.id, police) == (200, 1, [complaint.id])

    # An extension waiting for a decision, then an arbitration: the accused office is
    # answered as for an assignment that does not exist.
    partner = bearer("city-police", "partner")
    asked = client.post(
        f"/v1/assignments/{complaint.id}/extension",
        headers=partner,
        json={"days": 60, "reason": "需调查"},
    )
    assert asked.status_code == 200
    decision = client.post(
        f"/v1/assignments/{complaint.id}/extension/decision",
        headers=accused,
        json={"grant": True, "reason": "同意"},
    )
    assert decision.status_code == 404
    moved = client.post(
        f"/v1/assignments/{complaint.id}/return", headers=partner, json={"reason": "不归我们"}
    )
    assert moved.status_code == 200 and moved.get_json()["status"] == "arbitration"
    arbitration = client.post(
        f"/v1/assignments/{complaint.id}/arbitration",
        headers=accused,
        json={"unit": "city-land", "reason": "交国土"},
    )
    assert arbitration.status_code == 404


def test_a_complaint_about_the_city_is_read_only_by_the_discipline_commission(
    client, runtime, deliver, case_data, case_registered
):
    complaint = route(
        runtime,
        deliver,
        case_data,
        case_registered,
        accused={"unit": "city", "person": None},
        disposition={"action": "route"},
    )
    assert complaint.unit == "city-discipline"
    # Every city-level supervisor governs the whole city, and every unit is the city's.
    for unit in ("city-gov-office", "city-org", "city-police", "city"):
        assert reads(client, complaint.id, bearer(unit, "supervisor")) == (404, 0, []), unit
    # The commission it was handed to reads it, its partner and its supervisor alike.
    for role in ("partner", "supervisor"):
        assert reads(client, complaint.id, bearer("city-discipline", role)) == (
            200,
            1,
            [complaint.id],
        )
    assert reads(client, complaint.id, bearer("city-org", "admin"))[0] == 200
