"""The broker definitions compose loads are the topology the code declares, and they work."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml

from eventbus import definitions, envelope, names, testing
from eventbus.connection import connect
from eventbus.consumer import Consumer

ROOT = Path(__file__).resolve().parents[2]
FILE = ROOT / "deploy" / "rabbitmq" / "definitions.json"
NIGHTTALK = str(Path(sys.executable).with_name("nighttalk"))


def _committed():
    return json.loads(FILE.read_text())


def _salt_of(body) -> str:
    return base64.b64decode(body["users"][0]["password_hash"])[:4].hex()


def test_the_committed_definitions_are_what_the_code_generates():
    committed = _committed()
    generated = subprocess.run(
        [NIGHTTALK, "broker", "definitions", "--salt", _salt_of(committed)],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": str(Path(sys.executable).parent)},
    ).stdout
    assert json.loads(generated) == committed, (
        "deploy/rabbitmq/definitions.json is stale: regenerate it with "
        "`nighttalk broker definitions --salt <salt> > deploy/rabbitmq/definitions.json`"
    )


def test_the_definitions_user_is_the_one_compose_connects_as():
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    rabbit = compose["services"]["rabbitmq"]["environment"]
    user = rabbit["RABBITMQ_DEFAULT_USER"].split(":-")[1].rstrip("}")
    password = rabbit["RABBITMQ_DEFAULT_PASS"].split(":-")[1].rstrip("}")
    [entry] = _committed()["users"]
    salt = base64.b64decode(entry["password_hash"])[:4]
    assert entry["name"] == user
    assert entry["password_hash"] == definitions.password_hash(password, salt)
    assert "guest" not in {u["name"] for u in _committed()["users"]}


def test_every_consuming_service_has_its_queue_policy_and_dead_letters():
    body = _committed()
    queues = {q["name"]: q["arguments"] for q in body["queues"]}
    for service in ("intake", "routing", "supervision", "notify"):
        assert queues[names.service_queue(service)]["x-dead-letter-routing-key"] == service
        assert names.dead_letter_queue(service) in queues
        assert any(p["name"] == f"nighttalk-{service}-dead-letters" for p in body["policies"])


def _rabbitmqctl(*args):
    done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"rabbitmqctl {args[0]}: {done.stderr or done.stdout}"


@pytest.fixture
def loaded_vhost():
    """Import the definitions, re-targeted at a throw-away vhost and user, into the real broker."""
    vhost, user, password = (
        f"nt-defs-{uuid.uuid4().hex[:8]}",
        f"nt-defs-{uuid.uuid4().hex[:6]}",
        "pw",
    )
    body = _committed()
    for section in ("queues", "exchanges", "bindings", "policies", "permissions"):
        for entry in body[section]:
            entry["vhost"] = vhost
    body["vhosts"] = [{"name": vhost}]
    body["users"][0]["name"] = user
    body["users"][0]["password_hash"] = definitions.password_hash(password)
    body["permissions"][0]["user"] = user
    # rabbitmqctl reads the file as the rabbitmq user: not from pytest's private folder.
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        handle.write(json.dumps(body))
    path = Path(handle.name)
    path.chmod(0o644)
    try:
        _rabbitmqctl("import_definitions", str(path))
    finally:
        path.unlink()
    url = f"amqp://{user}:{password}@localhost:5672/{vhost}"
    deadline = time.monotonic() + 30  # the import finishes asynchronously
    while True:
        try:
            testing.queue_depth(url, names.service_queue("notify"))
            break
        except Exception:  # noqa: BLE001 - not there yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    try:
        yield url
    finally:
        _rabbitmqctl("delete_vhost", vhost)
        _rabbitmqctl("delete_user", user)


def test_loaded_definitions_keep_events_before_any_consumer_and_agree_with_it(loaded_vhost):
    # Published before any consumer ever ran: the queue from the definitions keeps it.
    event = envelope.build(
        service="intake", routing_key="case.registered", subject="c-def", data={"x": 1}
    )
    conn = connect(loaded_vhost)
    channel = conn.channel()
    channel.confirm_delivery()
    channel.basic_publish(
        event.exchange, event.routing_key, event.body, event.properties(), mandatory=True
    )
    conn.close()
    assert testing.queue_depth(loaded_vhost, names.service_queue("routing")) == 1

    # A consumer declaring its own topology finds the same arguments (no PRECONDITION_FAILED).
    applied = []
    consumer = Consumer(
        service="routing",
        handlers={"case.registered": lambda uow, e: applied.append(e.id)},
        unit_of_work=lambda: _NoStore(),
        url=loaded_vhost,
    )
    ready = threading.Event()
    consumer.on_ready = ready.set
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        assert ready.wait(20), "the consumer could not declare over the loaded definitions"
        deadline = time.monotonic() + 10
        while not applied and time.monotonic() < deadline:
            time.sleep(0.05)
        assert applied == [event.event_id]
    finally:
        consumer.stop()
        thread.join(10)


class _NoStore:
    """A unit of work with nothing behind it: this test is about the broker."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def claim_application(self, event_id, consumer, event_type):
        return True

    def commit(self):
        return []
