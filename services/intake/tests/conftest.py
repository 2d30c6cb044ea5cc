"""Fixtures for intake: an app on a fresh migrated database and the test vhost."""

import copy

import pytest

from intake.app import create_app
from servicekit import auth, migrations


@pytest.fixture
def database_url(make_database):
    url = make_database("intake")
    migrations.upgrade("intake", "intake", url)
    return url


@pytest.fixture
def app(database_url, amqp_url):
    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "AMQP_URL": amqp_url})
    yield app
    app.extensions["runtime"].close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def bearer():
    """Return a function making Authorization headers for a unit and roles."""

    def make(unit="city-org", *roles):
        return {"Authorization": f"Bearer {auth.mint(unit, list(roles) or ['reception'])}"}

    return make


@pytest.fixture
def visit_body():
    """The visit of DESIGN.md: three issues, one of each disposition."""
    return {
        "channel": "night_talk",
        "received_at": "2026-11-15T17:05:00+08:00",
        "leader": "黄宝山",
        "headcount": 5,
        "visitor": {
            "name": "林河清",
            "phone": "13905961234",
            "id_number": "350602195001011234",
            "address": "郭坑镇",
        },
        "issues": [
            {
                "category": "wage_arrears",
                "summary": "退休教师工资拖欠",
                "location": "郭坑镇中学",
                "disposition": {"action": "resolved_on_spot", "answer": "镇里当场同意补发"},
            },
            {
                "category": "medical_reimbursement",
                "summary": "医药费无法报销",
                "disposition": {"action": "sign_over", "unit": "lw-guokeng"},
            },
            {
                "category": "demolition_compensation",
                "summary": "拆迁补偿金未到位",
                "accused": {"unit": "lw-buwen"},
                "disposition": {"action": "route"},
            },
        ],
    }


@pytest.fixture
def runtime(app):
    """Return the app's runtime: the same database the API reads."""
    return app.extensions["runtime"]


@pytest.fixture
def register(client, bearer, visit_body):
    """Return a function registering a visit (the standard one, or changed) for a unit."""

    def make(unit="city-org", **changes):
        body = copy.deepcopy(visit_body)
        body.update(changes)
        r = client.post("/v1/visits", json=body, headers=bearer(unit))
        assert r.status_code == 201, r.get_json()
        return r.get_json()

    return make
