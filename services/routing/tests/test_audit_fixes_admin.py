"""The admin's directory and rules API: what is asked is what is stored, and retries are safe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from routing import models
from routing.cli import group
from servicekit.auth import mint

NAMED_UNITS = Path(__file__).parent / "data" / "units_named.json"
NO_BROKER = "amqp://guest:guest@127.0.0.1:1/%2F"


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


def seed_file(tmp_path, **changes) -> str:
    """Write the named units' directory with some units changed; return its path."""
    raw = json.loads(NAMED_UNITS.read_text(encoding="utf-8"))
    for unit in raw["units"]:
        unit.update(changes.get(unit["code"], {}))
    path = tmp_path / "units.json"
    path.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    return str(path)


def directory_state(runtime) -> dict[str, tuple]:
    with runtime.sessions() as session:
        units = session.scalars(select(models.Unit)).all()
        return {u.code: (u.name, u.active, u.revision) for u in units}


@pytest.fixture
def seeding(runtime, database, monkeypatch):
    """Return a function running ``nighttalk routing seed --file <path>`` on the test database."""
    monkeypatch.setenv("ROUTING_DATABASE_URL", database)
    monkeypatch.setenv("AMQP_URL", NO_BROKER)

    def run(path: str):
        return CliRunner().invoke(group, ["seed", "--file", path, "--broker-wait", "0"])

    return run


def test_seed_refuses_to_retire_the_default_unit(
    runtime, seeding, tmp_path, deliver, case_data, case_registered
):
    before = directory_state(runtime)
    path = seed_file(
        tmp_path,
        **{"city-gov-office": {"active": False}, "lw-buwen": {"name": "步文镇（新）"}},
    )

    result = seeding(path)

    assert result.exit_code != 0
    assert "'city-gov-office' is the default unit" in result.output
    assert directory_state(runtime) == before  # the other change was not made either
    # Unclaimed cases still reach the default unit.
    data = case_data(disposition={"action": "route"})
    deliver(case_registered(data))
    with runtime.sessions() as session:
        [assignment] = session.scalars(select(models.Assignment)).all()
        assert assignment.unit == "city-gov-office"


def test_seed_refuses_to_retire_a_unit_a_rule_names(client, runtime, seeding, tmp_path):
    response = client.post(
        "/v1/rules", headers=ADMIN, json={"category": "land", "area": "lw", "unit": "lw-org"}
    )
    assert response.status_code == 201, response.get_json()
    before = directory_state(runtime)

    result = seeding(seed_file(tmp_path, **{"lw-org": {"active": False}}))

    assert result.exit_code != 0
    assert "routing rules name 'lw-org'" in result.output
    assert response.get_json()["rule_id"] in result.output
    assert directory_state(runtime) == before
