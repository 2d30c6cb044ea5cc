"""The visitor's contact leaves intake sealed: never in clear in the outbox or on the broker."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import create_engine, text

from eventbus import testing, topology
from eventbus.connection import connect
from servicekit import pii

NAME, PHONE, ADDRESS = "林河清", "13905961234", "郭坑镇"


def test_the_contact_is_sealed_in_the_outbox_and_on_the_broker(
    client, bearer, visit_body, amqp_url, database_url
):
    # A queue of our own on the contact's key: the message as notify's queue receives it.
    queue = f"t.intake.contact.{uuid.uuid4().hex[:8]}"
    conn = connect(amqp_url)
    channel = conn.channel()
    topology.declare_exchanges(channel)
    channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_bind(queue, "nighttalk.events", routing_key="visit.contact_recorded")
    conn.close()
    try:
        r = client.post("/v1/visits", json=visit_body, headers=bearer())
        assert r.status_code == 201, r.get_json()
        ((_method, props, body),) = testing.get_messages(amqp_url, queue, count=1, timeout=10)
    finally:
        conn = connect(amqp_url)
        conn.channel().queue_delete(queue)
        conn.close()

    on_the_broker = body.decode() + json.dumps(props.headers, default=str)
    for clear in (NAME, PHONE, ADDRESS):
        assert clear not in on_the_broker
    data = json.loads(body)
    assert "visitor" not in data
    # Notify, holding the same key, opens it to the contact the desk recorded.
    assert json.loads(pii.decrypt(data["sealed_contact"])) == {
        "name": NAME,
        "phone": PHONE,
        "address": ADDRESS,
    }
    assert data["visit_id"] == r.get_json()["visit_id"]
    assert data["unit"] == "city-org" and data["language"] == "zh"
    assert [c["case_number"] for c in data["cases"]] == [
        c["case_number"] for c in r.get_json()["cases"]
    ]

    # The outbox keeps its rows once sent: not one of them shows the visitor. (Only the
    # contact's key is bound on this vhost: the other rows stay unsent, unroutable.)
    client.application.extensions["runtime"].outbox.marks.flush()
    engine = create_engine(database_url)
    try:

        def outbox():
            with engine.connect() as c:
                return c.execute(
                    text("SELECT routing_key, sent_at, headers, body FROM outbox")
                ).all()

        def contact_sent():
            return any(
                row.sent_at for row in outbox() if row.routing_key == "visit.contact_recorded"
            )

        testing.eventually(contact_sent, "the contact's outbox row marked sent")
        stored = [bytes(row.body).decode() + json.dumps(row.headers) for row in outbox()]
    finally:
        engine.dispose()
    assert stored
    for clear in (NAME, PHONE, ADDRESS):
        assert not any(clear in row for row in stored), clear
