"""routing against the real broker: consume case.registered, publish case.routed and copies."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from cloudevents.core.bindings import rabbitmq
from dateutil.relativedelta import relativedelta
from sqlalchemy import select

from eventbus import names, testing, topology
from eventbus.connection import connect
from eventbus.publisher import Publisher
from routing import directory, models
from routing.cli import group
from routing.handlers import handlers
from routing.partners import consumer_setup
from servicekit.runtime import make_runtime

NAMED_UNITS = Path(__file__).parent / "data" / "units_named.json"


@pytest.fixture
def live_runtime(database, amqp_url):
    """Yield a seeded runtime whose outbox publishes to the test vhost."""
    runtime = make_runtime("routing", models.metadata, database, amqp_url)
    with runtime.sessions() as session:
        directory.seed(session, directory.load_units(NAMED_UNITS))
        session.commit()
    yield runtime
    runtime.close()


@pytest.fixture
def case_routed_queue(amqp_url):
    """Yield a test queue bound to case.routed on nighttalk.events, as supervision's would be."""
    queue = f"test.case-routed.{secrets.token_hex(4)}"
    conn = connect(amqp_url)
    try:
        channel = conn.channel()
        topology.declare_exchanges(channel)
        channel.queue_declare(queue, durable=False)
        channel.queue_bind(queue, names.EVENTS_EXCHANGE, routing_key="case.routed")
    finally:
        conn.close()
    yield queue
    conn = connect(amqp_url)
    try:
        conn.channel().queue_delete(queue)
    finally:
        conn.close()


@pytest.fixture
def consumer(live_runtime, amqp_url):
    """Run routing's consumer in a thread, as ``nighttalk routing consume`` does."""
    with testing.running_consumer(
        service="routing",
        handlers=handlers(live_runtime),
        unit_of_work=live_runtime.unit_of_work,
        url=amqp_url,
        setup=consumer_setup(live_runtime),
    ) as running:
        yield running


def publish(amqp_url, event) -> None:
    publisher = Publisher(amqp_url)
    try:
        publisher.publish(event)  # confirmed and routed, or it raises
    finally:
        publisher.close()


def sdk_event(message):
    """Decode a received message with the official CloudEvents SDK, as a partner would."""
    _method, properties, body = message
    headers = {
        key: value.decode() if isinstance(value, bytes) else str(value)
        for key, value in (properties.headers or {}).items()
    }
    return rabbitmq.from_binary_event(
        rabbitmq.RabbitMQMessage(headers=headers, content_type=properties.content_type, body=body)
    )


def envelope_of(event):
    """Decode an outgoing event as the consumer would receive it."""
    from eventbus import envelope

    return envelope.decode(event.properties(), event.body, event.routing_key)


def test_a_registered_case_reaches_its_partner_and_the_events_exchange(
    consumer, live_runtime, amqp_url, case_routed_queue, case_data, case_registered
):
    data = case_data()
    incoming = case_registered(data)
    publish(amqp_url, incoming)

    [partner_message] = testing.get_messages(amqp_url, "partner.lw-guokeng", count=1, timeout=20)
    partner = sdk_event(partner_message)
    assert partner.get_type() == "nighttalk.case.routed.v1"
    assert partner.get_source() == "/nighttalk/routing"
    assert partner.get_subject() == data["case_id"]
    assert partner_message[1].message_id == partner.get_id()
    assert partner_message[1].delivery_mode == 2
    assert partner_message[0].routing_key == "lw-guokeng.case.routed"
    payload = partner.get_data()
    assert payload["case_id"] == data["case_id"]
    assert payload["case_number"] == data["case_number"]
    assert payload["unit"] == "lw-guokeng" and payload["role"] == "lead"
    assert payload["receiving_unit"] == "city-org" and payload["confidential"] is False
    assert "visitor_ref" not in payload
    routed_at = dt.datetime.fromisoformat(payload["routed_at"])
    assert routed_at.utcoffset() == dt.timedelta(0)
    assert dt.datetime.fromisoformat(payload["due_at"]) == routed_at + relativedelta(months=1)

    [events_message] = testing.get_messages(amqp_url, case_routed_queue, count=1, timeout=20)
    routed = sdk_event(events_message)
    assert routed.get_type() == "nighttalk.case.routed.v1"
    assert routed.get_subject() == data["case_id"]
    assert routed.get_data() == payload
    assert routed.get_id() != partner.get_id()
    # One case followed across services: routing's events continue intake's trace.
    trace_id = incoming.headers["ce-traceparent"].split("-")[1]
    for event in (routed, partner):
        assert event.get_attributes()["traceparent"].split("-")[1] == trace_id

    with live_runtime.sessions() as session:
        [assignment] = session.scalars(select(models.Assignment)).all()
        assert assignment.id == payload["assignment_id"]
    outbox = models.metadata.tables["outbox"]

    def all_sent() -> bool:
        with live_runtime.engine.connect() as conn:
            sent_at = conn.execute(select(outbox.c.sent_at)).scalars().all()
        return len(sent_at) == 2 and all(sent_at)

    testing.eventually(all_sent, "both outbox rows marked sent")


def test_a_complaint_reaches_the_accused_units_superior_only(
    consumer, live_runtime, amqp_url, case_routed_queue, case_data, case_registered
):
    data = case_data(
        category="demolition_compensation",
        summary="拆迁补偿金未到位",
        accused={"unit": "lw-buwen", "person": None},
        disposition={"action": "sign_over", "unit": "lw-buwen"},
    )
    publish(amqp_url, case_registered(data))
    [message] = testing.get_messages(amqp_url, "partner.lw", count=1, timeout=20)
    payload = sdk_event(message).get_data()
    assert payload["unit"] == "lw" and payload["confidential"] is True
    [_] = testing.get_messages(amqp_url, case_routed_queue, count=1, timeout=20)
    assert testing.queue_depth(amqp_url, "partner.lw-buwen") == 0


def test_a_case_announced_twice_reaches_the_partner_once(
    consumer, live_runtime, amqp_url, case_routed_queue, case_data, case_registered
):
    data = case_data(disposition={"action": "sign_over", "unit": "xc-zhishan"})
    first = case_registered(data)
    publish(amqp_url, first)
    publish(amqp_url, first)  # a redelivery: the same event id
    publish(amqp_url, case_registered(data))  # the same case under another event id
    marker = case_data(disposition={"action": "sign_over", "unit": "xc-zhishan"})
    publish(amqp_url, case_registered(marker))  # queued after the duplicates

    # The consumer applies messages in order and publishes each copy right after its
    # commit: a copy made for a duplicate would come before the marker's.
    messages = testing.get_messages(amqp_url, "partner.xc-zhishan", count=2, timeout=20)
    cases = [sdk_event(m).get_data()["case_id"] for m in messages]
    assert cases == [data["case_id"], marker["case_id"]]
    assert testing.queue_depth(amqp_url, "partner.xc-zhishan") == 0
    with live_runtime.sessions() as session:
        routed = session.scalars(select(models.Assignment.case_id)).all()
    assert sorted(routed) == sorted([data["case_id"], marker["case_id"]])


def test_an_invalid_case_is_dead_lettered(
    consumer, live_runtime, amqp_url, case_data, case_registered
):
    bad = case_data(disposition={"action": "forward"})
    publish(amqp_url, case_registered(bad))
    [message] = testing.get_messages(
        amqp_url, names.dead_letter_queue("routing"), count=1, timeout=20
    )
    assert sdk_event(message).get_data()["case_id"] == bad["case_id"]
    with live_runtime.sessions() as session:
        assert session.scalars(select(models.Assignment)).all() == []


def test_a_reopening_of_a_case_routing_never_routed_is_acked_not_dead_lettered(
    consumer, live_runtime, amqp_url, case_data, case_registered
):
    # A case answered on the spot at the desk, reopened by supervision when its visitor
    # rejected the answer: case.reopened names the receiving unit, routing has no
    # assignment for it. It is logged and acked, as a case unknown here.
    from eventbus import envelope

    on_spot = case_data(disposition={"action": "resolved_on_spot", "unit": None})
    publish(amqp_url, case_registered(on_spot))
    reopened = envelope.build(
        service="supervision",
        routing_key="case.reopened",
        subject=on_spot["case_id"],
        data={
            "case_id": on_spot["case_id"],
            "case_number": on_spot["case_number"],
            "unit": on_spot["unit"],
            "reason": "the visitor is not satisfied with the resolution",
            "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
        },
    )
    publish(amqp_url, reopened)
    marker = case_data(disposition={"action": "sign_over", "unit": "xc-zhishan"})
    publish(amqp_url, case_registered(marker))  # queued after the reopening

    # The consumer applies messages in order: the marker's copy means the reopening is done.
    [_] = testing.get_messages(amqp_url, "partner.xc-zhishan", count=1, timeout=20)
    inbox = live_runtime.inbox_table
    with live_runtime.engine.connect() as conn:
        applied = conn.scalars(
            select(inbox.c.event_id).where(inbox.c.event_id == reopened.event_id)
        ).all()
    assert applied == [reopened.event_id]
    assert testing.queue_depth(amqp_url, names.dead_letter_queue("routing")) == 0
    with live_runtime.sessions() as session:
        routed = session.scalars(select(models.Assignment.case_id)).all()
    assert routed == [marker["case_id"]]


def test_seed_loads_the_directory_and_declares_partner_queues(database, amqp_url, monkeypatch):
    monkeypatch.setenv("AMQP_URL", amqp_url)
    monkeypatch.setenv("ROUTING_DATABASE_URL", database)
    units_queue = f"test.unit-changed.{secrets.token_hex(4)}"
    conn = connect(amqp_url)
    try:
        channel = conn.channel()
        topology.declare_exchanges(channel)
        channel.queue_declare(units_queue, durable=False)
        channel.queue_bind(units_queue, names.EVENTS_EXCHANGE, routing_key="unit.changed")
    finally:
        conn.close()
    runner = CliRunner()
    first = runner.invoke(group, ["seed", "--file", str(NAMED_UNITS)], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert "34 added, 0 updated, 0 unchanged; 34 announced" in first.output
    assert "34 partner queues declared" in first.output
    again = runner.invoke(group, ["seed", "--file", str(NAMED_UNITS)], catch_exceptions=False)
    assert again.exit_code == 0 and "0 added, 0 updated, 34 unchanged; 0 announced" in again.output

    # Each unit added was announced once, at revision 1, as supervision and intake read it.
    announced = testing.get_messages(amqp_url, units_queue, count=34, timeout=20)
    snapshots = {sdk_event(m).get_subject(): sdk_event(m).get_data() for m in announced}
    assert len(snapshots) == 34
    assert snapshots["lw-buwen"] == {
        "code": "lw-buwen",
        "name": "步文镇",
        "level": "township",
        "parent": "lw",
        "area": "lw",
        "leader": None,
        "active": True,
        "revision": 1,
    }

    # The queues exist and are bound: a message published with mandatory is routed.
    probe = uuid.uuid4().hex
    testing.publish_raw(
        amqp_url,
        names.PARTNERS_EXCHANGE,
        "ds-xipu.case.routed",
        json.dumps({"probe": probe}).encode(),
    )
    [message] = testing.get_messages(amqp_url, "partner.ds-xipu", count=1, timeout=10)
    assert json.loads(message[2]) == {"probe": probe}


def test_seed_refuses_a_broken_directory_file(database, amqp_url, monkeypatch, tmp_path):
    monkeypatch.setenv("AMQP_URL", amqp_url)
    monkeypatch.setenv("ROUTING_DATABASE_URL", database)
    path = tmp_path / "units.json"
    path.write_text(
        json.dumps(
            {
                "units": [
                    {
                        "code": "lw-town",
                        "name": "某镇",
                        "level": "township",
                        "parent": "lw",
                        "area": "lw",
                    },
                ]
            }
        ),
        encoding="utf-8",
    )
    result = CliRunner().invoke(group, ["seed", "--file", str(path)])
    assert result.exit_code != 0
    assert "parent 'lw' is no unit" in result.output


def test_partner_actions_reach_the_events_exchange_and_the_partner_queue(
    live_runtime, database, amqp_url, case_data, case_registered
):
    from routing.app import create_app
    from routing.partners import declare_partner_queues
    from servicekit.auth import mint

    conn = connect(amqp_url)
    try:
        channel = conn.channel()
        topology.declare_exchanges(channel)
        declare_partner_queues(channel, ["lw-guokeng"])
        queue = f"test.assignments.{secrets.token_hex(4)}"
        channel.queue_declare(queue, durable=False)
        channel.queue_bind(queue, names.EVENTS_EXCHANGE, routing_key="assignment.*")
    finally:
        conn.close()
    data = case_data()
    event = case_registered(data)
    incoming = envelope_of(event)
    with live_runtime.unit_of_work() as uow:
        handlers(live_runtime)["case.registered"](uow, incoming)
        uow.commit()
    app = create_app({"DATABASE_URL": database, "AMQP_URL": amqp_url, "TESTING": True})
    try:
        client = app.test_client()
        headers = {"Authorization": f"Bearer {mint('lw-guokeng', ['partner'])}"}
        [item] = client.get("/v1/inbox", headers=headers).get_json()["items"]
        response = client.post(f"/v1/assignments/{item['assignment_id']}/accept", headers=headers)
        assert response.status_code == 200
        response = client.post(
            f"/v1/assignments/{item['assignment_id']}/resolve",
            headers=headers,
            json={"answer": "已报销"},
        )
        assert response.status_code == 200
    finally:
        app.extensions["runtime"].close()

    partner = testing.get_messages(amqp_url, "partner.lw-guokeng", count=2, timeout=20)
    assert [sdk_event(m).get_type() for m in partner] == [
        "nighttalk.case.routed.v1",
        "nighttalk.assignment.accepted.v1",
    ]
    published = testing.get_messages(amqp_url, queue, count=2, timeout=20)
    decoded = [sdk_event(m) for m in published]
    assert [e.get_type() for e in decoded] == [
        "nighttalk.assignment.accepted.v1",
        "nighttalk.assignment.resolved.v1",
    ]
    assert decoded[1].get_data()["answer"] == "已报销"
    assert decoded[1].get_subject() == data["case_id"]
