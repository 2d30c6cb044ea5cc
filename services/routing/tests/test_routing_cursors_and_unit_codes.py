"""Odd cursors and unit codes get a 4xx saying what is wrong, never a 500."""

from __future__ import annotations

import base64
import json

import pytest

from servicekit.auth import mint


def bearer(unit: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(unit, list(roles), sub=f'{unit}:clerk')}"}


ADMIN = bearer("city-org", "admin")
GUOKENG = bearer("lw-guokeng", "partner")
ANY_ID = "6f1c1b8e-8f5d-4a55-9a0e-5d1f1c0b7a10"


def cursor(*parts) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode()


@pytest.mark.parametrize(
    "value",
    [
        cursor("0001-01-01T00:00:00+01:00", ANY_ID),  # before year 1 in UTC
        cursor("9999-12-31T23:59:59-01:00", ANY_ID),  # after year 9999 in UTC
        cursor("2026-01-01T00:00:00+00:00", "x\u0000y"),  # a NUL in the id
        cursor("2026-01-01T00:00:00+00:00", "x"),  # not an assignment id
    ],
)
def test_a_bad_inbox_cursor_is_refused(client, value):
    response = client.get(f"/v1/inbox?cursor={value}", headers=GUOKENG)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.get_json()["errors"]["query"]["cursor"] == ["invalid cursor"]


def test_a_good_cursor_still_pages(client, deliver, case_data, case_registered):
    for n in range(3):
        deliver(case_registered(case_data(case_number=f"city-org-20261215-{n:04d}")))
    first = client.get("/v1/inbox?limit=2", headers=GUOKENG).get_json()
    rest = client.get(f"/v1/inbox?cursor={first['next_cursor']}", headers=GUOKENG).get_json()
    numbers = [item["case_number"] for item in first["items"] + rest["items"]]
    assert numbers == [f"city-org-20261215-{n:04d}" for n in range(3)]


@pytest.mark.parametrize("code", ["%00", "lw%00buwen", "LW-BUWEN", "-lw", "a" * 65])
@pytest.mark.parametrize(
    "method, suffix, body",
    [
        ("get", "", None),
        ("patch", "", {"name": "某镇"}),
        ("put", "/webhook", {"url": "https://example.com/hook"}),
        ("get", "/webhook", None),
        ("delete", "/webhook", None),
    ],
)
def test_a_unit_code_that_cannot_be_one_is_not_found(client, code, method, suffix, body):
    call = getattr(client, method)
    kwargs = {"json": body} if body is not None else {}
    response = call(f"/v1/units/{code}{suffix}", headers=ADMIN, **kwargs)
    assert response.status_code == 404, response.get_data(as_text=True)
