"""Contacts written to the outbox in clear before they were sealed are sealed by a migration."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import create_engine, text

from servicekit import migrations, pii

BEFORE = "a7d3e9c1f5b2"  # the last revision whose outbox may hold a contact in clear


def _row(conn, position: int, routing_key: str, data: dict, *, sent: bool) -> None:
    conn.execute(
        text(
            "INSERT INTO outbox (position, event_id, exchange, routing_key, headers, body,"
            " created_at, sent_at, attempts)"
            " VALUES (:position, :event_id, 'nighttalk.events', :routing_key, :headers, :body,"
            " :at, :sent_at, 0)"
        ),
        {
            "position": position,
            "event_id": f"00000000-0000-0000-0000-{position:012d}",
            "routing_key": routing_key,
            "headers": json.dumps({"ce-type": f"nighttalk.intake.{routing_key}.v1"}),
            "body": json.dumps(data, ensure_ascii=False).encode(),
            "at": dt.datetime(2026, 11, 15, 9, tzinfo=dt.UTC),
            "sent_at": dt.datetime(2026, 11, 15, 9, tzinfo=dt.UTC) if sent else None,
        },
    )


def test_contacts_kept_in_clear_are_sealed_and_nothing_else_changes(make_database):
    url = make_database("intake")
    migrations.upgrade("intake", "intake", url, revision=BEFORE)
    clear = {
        "visit_id": "v1",
        "unit": "city-org",
        "visitor": {"name": "林河清", "phone": "13905961234", "address": "郭坑镇"},
        "language": "zh",
        "cases": [{"case_id": "c1", "case_number": "city-org-20261115-0001"}],
    }
    already = {"visit_id": "v2", "unit": "city-org", "sealed_contact": pii.encrypt("{}")}
    other = {"case_id": "c1", "visitor_ref": "abc", "summary": "路灯不亮"}
    engine = create_engine(url)
    with engine.begin() as conn:
        _row(conn, 1, "visit.contact_recorded", clear, sent=True)
        _row(conn, 2, "visit.contact_recorded", {**clear, "visit_id": "v3"}, sent=False)
        _row(conn, 3, "visit.contact_recorded", already, sent=True)
        _row(conn, 4, "case.registered", other, sent=True)
    engine.dispose()

    migrations.upgrade("intake", "intake", url)

    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT position, body FROM outbox ORDER BY position")).all()
    engine.dispose()
    bodies = {position: json.loads(bytes(body)) for position, body in rows}
    for position, visit_id in ((1, "v1"), (2, "v3")):
        body = bodies[position]
        assert "visitor" not in body
        assert json.loads(pii.decrypt(body.pop("sealed_contact"))) == clear["visitor"]
        assert body == {k: v for k, v in clear.items() if k != "visitor"} | {"visit_id": visit_id}
    stored = "".join(bytes(body).decode() for _, body in rows)
    assert "13905961234" not in stored and "林河清" not in stored
    assert bodies[3] == already
    assert bodies[4] == other
