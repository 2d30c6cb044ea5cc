"""Visits registered before intake kept the ID number's and the phone's keys apart."""

from __future__ import annotations

import hashlib
import hmac
import json

from sqlalchemy import create_engine, text

from intake.app import create_app
from servicekit import auth, migrations, pii

BEFORE = "c3a9e5f1d2b8"  # the last revision with one visitor key
ID_NUMBER = "350602195001011234"


def _old_key(material: str) -> str:
    # How a visitor was keyed then: the ID number if given, else the phone as typed.
    return hmac.new(pii.derive("visitor"), material.encode(), hashlib.sha256).hexdigest()


def _old_visit(conn, n: int, *, phone: str, id_number: str | None, category: str) -> str:
    visit_id, case_id = f"00000000-0000-0000-0000-00000000000{n}", f"c{n}"
    key = _old_key("id:" + id_number) if id_number else _old_key("phone:" + phone)
    conn.execute(
        text(
            "INSERT INTO visits (id, unit, channel, received_at, registered_at, registered_by,"
            " headcount, visitor_key, visitor_phone_enc, visitor_id_last4, follow_ups)"
            " VALUES (:id, 'city-org', 'daily', :at, :at, 'desk', 1, :key, :phone, :last4,"
            " :follow_ups)"
        ),
        {
            "id": visit_id,
            "at": f"2026-11-1{n} 02:00:00+00:00",
            "key": key,
            "phone": pii.encrypt(phone),
            "last4": id_number[-4:] if id_number else None,
            "follow_ups": json.dumps([]),
        },
    )
    conn.execute(
        text(
            "INSERT INTO cases (id, case_number, visit_id, position, unit, channel,"
            " received_at, category, summary, disposition, status, visitor_key, repeat_count)"
            " VALUES (:id, :number, :visit, 0, 'city-org', 'daily', :at, :category, '旧案',"
            " 'route', 'routed', :key, 0)"
        ),
        {
            "id": case_id,
            "number": f"city-org-2026111{n}-0001",
            "visit": visit_id,
            "at": f"2026-11-1{n} 02:00:00+00:00",
            "category": category,
            "key": key,
        },
    )
    return case_id


def test_cases_registered_before_are_found_by_id_number_or_normalised_phone(
    make_database, amqp_url, visit_body
):
    url = make_database("intake")
    migrations.upgrade("intake", "intake", url, revision=BEFORE)
    engine = create_engine(url)
    with engine.begin() as conn:
        by_phone = _old_visit(conn, 1, phone="+8613905961234", id_number=None, category="land")
        by_id = _old_visit(
            conn, 2, phone="13800001111", id_number=ID_NUMBER, category="retired_cadres"
        )
    engine.dispose()
    migrations.upgrade("intake", "intake", url)

    app = create_app({"TESTING": True, "DATABASE_URL": url, "AMQP_URL": amqp_url})
    try:
        client = app.test_client()
        headers = {"Authorization": f"Bearer {auth.mint('city-org', ['reception'])}"}
        body = {k: v for k, v in visit_body.items() if k != "issues"}
        body["channel"] = "daily"
        route = {"action": "route"}
        body["visitor"] = {"name": "林河清", "phone": "13905961234"}
        body["issues"] = [{"category": "land", "summary": "宅基地", "disposition": route}]
        r = client.post("/v1/visits", json=body, headers=headers)
        assert r.get_json()["cases"][0]["repeat_of"] == by_phone
        body["visitor"] = {"name": "林河清", "id_number": ID_NUMBER}
        body["issues"] = [
            {"category": "retired_cadres", "summary": "老干部待遇", "disposition": route}
        ]
        r = client.post("/v1/visits", json=body, headers=headers)
        assert r.get_json()["cases"][0]["repeat_of"] == by_id
        body["visitor"] = {"name": "林河清", "phone": "13800001111"}
        r = client.post("/v1/visits", json=body, headers=headers)
        assert r.get_json()["cases"][0]["repeat_of"] == by_id  # its phone, decrypted
    finally:
        app.extensions["runtime"].close()
