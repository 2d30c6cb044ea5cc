"""The admin's directory and rules API: what is asked is what is stored, and retries are safe."""

from __future__ import annotations

from servicekit.auth import mint


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
