"""Retiring a unit that still has active units under it is refused, by the API and by the seed."""

from __future__ import annotations

from sqlalchemy import select
from test_routing_admin_retries_and_seed import seed_file

from routing import models
from servicekit.auth import mint

ADMIN = {"Authorization": f"Bearer {mint('city-org', ['admin'], sub='city-org:clerk')}"}


def unit_events(runtime) -> list[str]:
    table = models.metadata.tables["outbox"]
    with runtime.engine.connect() as conn:
        rows = conn.execute(
            select(table.c.headers)
            .where(table.c.routing_key == "unit.changed")
            .order_by(table.c.position)
        )
        return [row.headers["ce-subject"] for row in rows]


def directory_state(runtime) -> dict[str, tuple]:
    with runtime.sessions() as session:
        units = session.scalars(select(models.Unit)).all()
        return {u.code: (u.parent, u.area, u.active, u.revision) for u in units}


def test_the_api_refuses_to_retire_a_county_whose_townships_are_active(client, runtime):
    before = directory_state(runtime)

    response = client.patch("/v1/units/lw", headers=ADMIN, json={"active": False})

    assert response.status_code == 409
    message = response.get_json()["message"]
    for child in ("lw-buwen", "lw-guokeng", "lw-org"):
        assert child in message
    assert directory_state(runtime) == before
    assert unit_events(runtime) == []


def test_the_api_refuses_an_active_unit_under_a_retired_parent(client, runtime):
    client.patch("/v1/units/ds-xipu", headers=ADMIN, json={"active": False})
    assert client.patch("/v1/units/ds", headers=ADMIN, json={"active": False}).status_code == 200
    township = {"code": "ds-newtown", "name": "新镇", "level": "township", "parent": "ds"}

    refused = client.post("/v1/units", headers=ADMIN, json=township)

    assert refused.status_code == 409, refused.get_json()
    assert "'ds' is inactive" in refused.get_json()["message"]
    added = client.post("/v1/units", headers=ADMIN, json={**township, "active": False})
    assert added.status_code == 201, added.get_json()


def test_the_api_retires_a_county_once_its_units_are_retired(client, runtime):
    assert client.patch("/v1/units/ds", headers=ADMIN, json={"active": False}).status_code == 409

    response = client.patch("/v1/units/ds-xipu", headers=ADMIN, json={"active": False})
    assert response.status_code == 200, response.get_json()
    response = client.patch("/v1/units/ds", headers=ADMIN, json={"active": False})

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["active"] is False
    assert unit_events(runtime) == ["ds-xipu", "ds"]


def test_the_api_refuses_to_retire_the_city_while_its_units_are_active(client):
    response = client.patch("/v1/units/city", headers=ADMIN, json={"active": False})

    assert response.status_code == 409
    assert "city-land" in response.get_json()["message"]


def test_the_seed_refuses_a_file_retiring_a_county_whose_townships_stay_active(
    runtime, seeding, tmp_path
):
    before = directory_state(runtime)
    path = seed_file(tmp_path, lw={"active": False}, **{"lw-buwen": {"name": "步文镇（新）"}})

    result = seeding(path)

    assert result.exit_code != 0
    assert "'lw'" in result.output
    for child in ("lw-buwen", "lw-guokeng", "lw-org"):
        assert child in result.output
    assert directory_state(runtime) == before  # the other change was not made either
    assert unit_events(runtime) == []


def test_the_seed_retires_a_county_with_its_units_or_once_they_moved(runtime, seeding, tmp_path):
    retired = {"active": False}
    path = seed_file(
        tmp_path,
        lw=retired,
        **{"lw-buwen": retired, "lw-guokeng": retired, "lw-org": retired},
        # 东山 is merged into 龙文: its one township moves there, the county retires.
        ds=retired,
        **{"ds-xipu": {"parent": "lw", "area": "lw", "active": True}},
    )

    result = seeding(path)

    assert result.exit_code != 0  # 西埔 would now sit under the retired 龙文
    assert "ds-xipu" in result.output

    path = seed_file(
        tmp_path,
        lw=retired,
        **{"lw-buwen": retired, "lw-guokeng": retired, "lw-org": retired},
        ds=retired,
        **{"ds-xipu": {"parent": "xc", "area": "xc"}},
    )

    result = seeding(path)

    # Seeded; the partner queues are then not declared here, where no broker listens.
    assert "routing: unit directory seeded (0 added, 6 updated" in result.output
    state = directory_state(runtime)
    assert not any(state[code][2] for code in ("lw", "lw-buwen", "lw-guokeng", "lw-org", "ds"))
    assert state["ds-xipu"][:3] == ("xc", "xc", True)


def test_the_seed_refuses_to_bring_back_a_unit_under_a_retired_parent(
    client, runtime, seeding, tmp_path
):
    # 东山 retired with its township, as the API allows; a later file brings back the
    # township alone, which would sit active under a retired county (the API refuses it).
    assert (
        client.patch("/v1/units/ds-xipu", headers=ADMIN, json={"active": False}).status_code == 200
    )
    assert client.patch("/v1/units/ds", headers=ADMIN, json={"active": False}).status_code == 200
    before = directory_state(runtime)

    # (The file lists every named unit: 东山 stays retired in it.)
    result = seeding(seed_file(tmp_path, ds={"active": False}, **{"ds-xipu": {"active": True}}))

    assert result.exit_code != 0
    assert "'ds-xipu'" in result.output and "'ds'" in result.output
    assert directory_state(runtime) == before

    # Brought back together with its county, it is seeded.
    result = seeding(seed_file(tmp_path, ds={"active": True}, **{"ds-xipu": {"active": True}}))

    # Seeded; the partner queues are then not declared here, where no broker listens.
    assert "routing: unit directory seeded (0 added, 2 updated" in result.output
    state = directory_state(runtime)
    assert state["ds"][2] and state["ds-xipu"][2]
