"""Partner and supervisor actions on assignments that are no longer open, or not the caller's."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from routing import models
from servicekit.auth import mint


def bearer(unit: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(unit, list(roles), sub=f'{unit}:clerk')}"}


GUOKENG = bearer("lw-guokeng", "partner")
LW_SUPERVISOR = bearer("lw", "supervisor")


def ask_for_extension(client, assignment_id: str) -> None:
    # 30 days: more than the policy grants at once, so the request waits.
    response = client.post(
        f"/v1/assignments/{assignment_id}/extension",
        headers=GUOKENG,
        json={"days": 30, "reason": "需要调查"},
    )
    assert response.status_code == 200 and response.get_json()["granted"] is False


def extension_events(runtime) -> int:
    table = models.metadata.tables["outbox"]
    with runtime.engine.connect() as conn:
        rows = conn.execute(
            select(table.c.routing_key).where(table.c.routing_key == "assignment.extension_granted")
        )
        return len(rows.all())


def test_a_resolved_assignment_drops_its_pending_extension_request(client, runtime, signed_over):
    assignment_id = signed_over()
    ask_for_extension(client, assignment_id)
    client.post(f"/v1/assignments/{assignment_id}/accept", headers=GUOKENG)
    response = client.post(
        f"/v1/assignments/{assignment_id}/resolve", headers=GUOKENG, json={"answer": "已解决"}
    )
    assert response.status_code == 200
    assert response.get_json()["extension_days"] is None
    due_at = response.get_json()["due_at"]

    response = client.post(
        f"/v1/assignments/{assignment_id}/extension/decision",
        headers=LW_SUPERVISOR,
        json={"grant": True, "reason": "同意"},
    )
    assert response.status_code == 409, response.get_json()
    assert "no extension request" in response.get_json()["message"]
    got = client.get(f"/v1/assignments/{assignment_id}", headers=GUOKENG).get_json()
    assert got["due_at"] == due_at and got["status"] == "resolved"
    assert extension_events(runtime) == 0


def test_no_extension_is_granted_on_an_assignment_that_is_not_open(client, runtime, signed_over):
    # A request left pending by older code on an assignment since resolved.
    assignment_id = signed_over()
    with runtime.sessions() as session:
        assignment = session.get(models.Assignment, assignment_id)
        assignment.status = models.RESOLVED
        assignment.extension_days = 30
        assignment.extension_reason = "需要调查"
        assignment.supervising_unit = "lw"
        session.commit()

    response = client.post(
        f"/v1/assignments/{assignment_id}/extension/decision",
        headers=LW_SUPERVISOR,
        json={"grant": True, "reason": "同意"},
    )
    assert response.status_code == 409, response.get_json()
    assert "resolved" in response.get_json()["message"]
    assert extension_events(runtime) == 0


def test_a_returned_assignment_drops_its_pending_extension_request(client, signed_over):
    assignment_id = signed_over()
    ask_for_extension(client, assignment_id)
    response = client.post(
        f"/v1/assignments/{assignment_id}/return", headers=GUOKENG, json={"reason": "不归我们"}
    )
    assert response.status_code == 200, response.get_json()
    old = client.get(f"/v1/assignments/{assignment_id}", headers=bearer("city-org", "admin"))
    assert old.get_json()["extension_days"] is None
    response = client.post(
        f"/v1/assignments/{assignment_id}/extension/decision",
        headers=LW_SUPERVISOR,
        json={"grant": True, "reason": "同意"},
    )
    assert response.status_code == 409


@pytest.mark.parametrize(
    "action, body",
    [
        ("accept", None),
        ("return", {"reason": "不归我们"}),
        ("transfer", {"to_unit": "lw-buwen", "reason": "不归我们"}),
        ("extension", {"days": 5, "reason": "需要调查"}),
        ("co-handlers", {"unit": "lw-buwen", "reason": "协办"}),
    ],
)
def test_a_partner_and_supervisor_of_another_area_learns_nothing_from_an_action(
    client, signed_over, action, body
):
    assignment_id = signed_over(disposition={"action": "sign_over", "unit": "xc-zhishan"})
    # 步文镇's token carries both roles; 芝山镇 is in another county, outside its jurisdiction.
    both = bearer("lw-buwen", "partner", "supervisor")
    assert client.get(f"/v1/assignments/{assignment_id}", headers=both).status_code == 404

    response = client.post(f"/v1/assignments/{assignment_id}/{action}", headers=both, json=body)
    assert response.status_code == 404, response.get_json()
    assert "xc-zhishan" not in response.get_json()["message"]


def test_a_partner_and_supervisor_of_the_area_is_told_only_its_partners_act(client, signed_over):
    assignment_id = signed_over()
    # 龙文区 governs 郭坑镇: it may read the assignment, so it may learn whose it is.
    both = bearer("lw", "partner", "supervisor")
    assert client.get(f"/v1/assignments/{assignment_id}", headers=both).status_code == 200
    response = client.post(f"/v1/assignments/{assignment_id}/accept", headers=both)
    assert response.status_code == 403
    assert "only a partner of 'lw-guokeng'" in response.get_json()["message"]
