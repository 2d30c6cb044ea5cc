"""The notifications API: auth, validated arguments, masked recipients, per-unit access."""

from __future__ import annotations

import uuid

import pytest
from notify_sample_events import NAME, PHONE, Visit, unit_changed

from eventbus import testing
from notify.app import create_app
from servicekit.auth import mint


@pytest.fixture
def app(database_url):
    app = create_app({"DATABASE_URL": database_url, "TESTING": True})
    yield app
    app.extensions["runtime"].close()


@pytest.fixture
def client(app):
    return app.test_client()


def bearer(unit: str = "city-org", *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(unit, list(roles) or ['reception'])}"}


@pytest.fixture
def registered(deliver) -> Visit:
    """A visit of city-org whose case and contact notify has heard of."""
    visit = Visit(unit="city-org")
    deliver(visit.case_registered())
    deliver(visit.contact_recorded())
    return visit


def test_list_needs_a_token(client, registered):
    response = client.get(f"/v1/notifications?case={registered.case_numbers[0]}")
    assert response.status_code == 401


def test_list_refuses_a_bad_token(client, registered):
    response = client.get(
        f"/v1/notifications?case={registered.case_numbers[0]}",
        headers={"Authorization": "Bearer not.a.token"},
    )
    assert response.status_code == 401


def test_read_by_id_needs_a_token(client):
    assert client.get(f"/v1/notifications/{uuid.uuid4()}").status_code == 401


def test_partners_may_not_read_visitor_notifications(client, registered):
    response = client.get(
        f"/v1/notifications?case={registered.case_numbers[0]}",
        headers=bearer("lw-buwen", "partner"),
    )
    assert response.status_code == 403


@pytest.mark.parametrize(
    "query, field",
    [
        ("", "case"),
        ("?case=", "case"),
        ("?case=city-org-2026-1", "case"),
        ("?case=CITY-ORG-20261215-0001", "case"),
        ("?case=city-org-20261215-" + "1" * 100, "case"),
        ("?case=city-org-20261215-0001&page=2", "page"),
    ],
)
def test_bad_arguments_are_refused_naming_the_field(client, query, field):
    response = client.get(f"/v1/notifications{query}", headers=bearer())
    assert response.status_code == 422
    assert field in response.get_json()["errors"]["query"]


def test_lists_the_receipt_with_the_recipient_masked(client, registered):
    response = client.get(
        f"/v1/notifications?case={registered.case_numbers[0]}", headers=bearer("city-org")
    )

    assert response.status_code == 200
    (receipt,) = response.get_json()
    assert receipt["case_number"] == registered.case_numbers[0]
    assert receipt["case_id"] == registered.case_ids[0]
    assert (receipt["kind"], receipt["channel"], receipt["status"]) == ("receipt", "sms", "pending")
    assert receipt["recipient"] == {
        "kind": "visitor",
        "name": "林*清",
        "phone": "139****1234",
        "address": "郭坑***",
    }
    assert receipt["payload"]["due_at"] == registered.due_at.isoformat()
    body = response.get_data(as_text=True)
    assert NAME not in body and PHONE not in body


def test_recipient_is_empty_while_the_contact_is_awaited(client, deliver):
    visit = Visit()
    deliver(visit.case_registered())

    response = client.get(f"/v1/notifications?case={visit.case_numbers[0]}", headers=bearer())

    (receipt,) = response.get_json()
    assert receipt["status"] == "awaiting_contact"
    assert receipt["recipient"] == {"kind": "visitor"}


def test_an_unknown_case_has_no_notifications(client, registered):
    response = client.get("/v1/notifications?case=city-org-20261215-9999", headers=bearer())
    assert response.status_code == 200
    assert response.get_json() == []


@pytest.mark.parametrize(
    "unit, roles, sees",
    [
        ("city-org", ["reception"], True),
        ("lw-buwen", ["reception"], False),
        # A township's supervisor governs its township, not the city's organisation dept.
        ("lw-buwen", ["supervisor"], False),
        ("city-org", ["supervisor"], True),
        ("lw-buwen", ["admin"], True),
    ],
)
def test_reception_reads_only_its_own_units_cases(client, registered, unit, roles, sees):
    listed = client.get(
        f"/v1/notifications?case={registered.case_numbers[0]}", headers=bearer(unit, *roles)
    )
    assert listed.status_code == 200
    assert len(listed.get_json()) == (1 if sees else 0)

    admin_view = client.get(
        f"/v1/notifications?case={registered.case_numbers[0]}", headers=bearer("city-org", "admin")
    ).get_json()
    one = client.get(f"/v1/notifications/{admin_view[0]['id']}", headers=bearer(unit, *roles))
    assert one.status_code == (200 if sees else 404)


def test_reads_one_notification_by_id(client, registered):
    (listed,) = client.get(
        f"/v1/notifications?case={registered.case_numbers[0]}", headers=bearer()
    ).get_json()

    response = client.get(f"/v1/notifications/{listed['id']}", headers=bearer())

    assert response.status_code == 200
    assert response.get_json() == listed


@pytest.mark.parametrize("ref", [str(uuid.uuid4()), "not-a-uuid", "x" * 500])
def test_unknown_ids_are_404(client, registered, ref):
    response = client.get(f"/v1/notifications/{ref}", headers=bearer("city-org", "admin"))
    assert response.status_code == 404


def test_openapi_documents_the_endpoints(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    assert "/v1/notifications" in paths
    assert "/v1/notifications/{notification_id}" in paths


def test_a_supervisor_reads_its_jurisdiction_only(client, deliver):
    # Regression (proof suite, authorisation): every supervisor read every unit's
    # notifications; the design gives a supervisor its jurisdiction only.
    for code, level, parent in (
        ("city", "city", None),
        ("lw", "county", "city"),
        ("city-org", "city", "city"),
        ("lw-buwen", "township", "lw"),
        ("lw-org", "county", "lw"),
        ("xc", "county", "city"),
        ("xc-org", "county", "xc"),
    ):
        deliver(unit_changed(code, level=level, parent=parent))
    visit = Visit(unit="lw-buwen")
    deliver(visit.case_registered())
    deliver(visit.contact_recorded())
    path = f"/v1/notifications?case={visit.case_numbers[0]}"
    (notification,) = client.get(path, headers=bearer("city-org", "admin")).get_json()
    # DESIGN: a city department the whole city, a county's departments that county.
    governs = {"lw-buwen": True, "lw": True, "lw-org": True, "city": True, "city-org": True}
    for unit, sees in {**governs, "xc": False, "xc-org": False}.items():
        token = bearer(unit, "supervisor")
        assert len(client.get(path, headers=token).get_json()) == (1 if sees else 0), unit
        one = client.get(f"/v1/notifications/{notification['id']}", headers=token)
        assert one.status_code == (200 if sees else 404), unit
        delivery = client.get(f"/v1/deliveries/{notification['id']}", headers=token)
        assert delivery.status_code == (200 if sees else 404), unit


def test_the_reads_end_in_commit(client, app, registered):
    """So that psycopg keeps the statements it prepared (it forgets them at a ROLLBACK)."""
    case = registered.case_numbers[0]
    desk, admin = bearer("city-org"), bearer("city-org", "admin")
    (receipt,) = client.get(f"/v1/notifications?case={case}", headers=desk).get_json()
    reads = [
        (f"/v1/notifications?case={case}", desk),
        (f"/v1/notifications/{receipt['id']}", desk),
        ("/v1/deliveries", desk),
        (f"/v1/deliveries/{receipt['id']}", desk),
        ("/v1/rules", admin),
        ("/v1/templates?kind=receipt", admin),
        ("/v1/templates/receipt/sms/zh", admin),
    ]
    with testing.transaction_endings(app.extensions["runtime"].engine) as endings:
        for path, headers in reads:
            response = client.get(path, headers=headers)
            assert response.status_code == 200, (path, response.get_json())

    assert endings == ["commit"] * len(reads)
