"""Fixtures of routing's tests: a migrated, seeded database and case.registered events."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from eventbus import envelope
from eventbus.envelope import OutgoingEvent, ReceivedEvent
from routing import directory, models
from routing.app import create_app
from routing.cli import group
from routing.handlers import handlers
from servicekit import migrations
from servicekit.runtime import Runtime, make_runtime

# Nothing listens here: handler tests look at the outbox rows, never at the broker,
# and must not publish into a broker some other process is using.
NO_BROKER = "amqp://guest:guest@127.0.0.1:1/%2F"

# The units named in the source: the directory of most tests. The shipped one (448
# units) gives each active unit a quorum queue, too many to create per test vhost.
NAMED_UNITS = Path(__file__).parent / "data" / "units_named.json"


@pytest.fixture(autouse=True)
def _loopback_webhooks(monkeypatch):
    """Let webhooks point at loopback: the tests' partner endpoints listen there."""
    monkeypatch.setenv("ROUTING_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")


@pytest.fixture
def database(make_database) -> str:
    """Return the URL of a fresh routing database at the head migration."""
    url = make_database("routing")
    migrations.upgrade("routing", "routing", url)
    return url


def seed_directory(runtime: Runtime) -> None:
    """Load the units named in the source into the runtime's database."""
    with runtime.sessions() as session:
        directory.seed(session, directory.load_units(NAMED_UNITS))
        session.commit()


@pytest.fixture
def bare_runtime(database):
    """Yield a runtime on a migrated database with an empty directory and no broker."""
    runtime = make_runtime("routing", models.metadata, database, NO_BROKER)
    yield runtime
    runtime.close()


@pytest.fixture
def runtime(bare_runtime):
    """Yield a runtime on a migrated database holding the shipped unit directory."""
    seed_directory(bare_runtime)
    return bare_runtime


@pytest.fixture
def app(runtime, database):
    """Yield routing's app on the seeded database; no broker: tests read the outbox."""
    app = create_app({"DATABASE_URL": database, "AMQP_URL": NO_BROKER, "TESTING": True})
    yield app
    app.extensions["runtime"].close()


@pytest.fixture
def client(app):
    return app.test_client()


def _case_data(**changes: Any) -> dict[str, Any]:
    data = {
        "case_id": str(uuid.uuid4()),
        "case_number": "city-org-20261215-0001",
        "visit_id": str(uuid.uuid4()),
        "unit": "city-org",
        "channel": "night_talk",
        "received_at": "2026-12-15T17:05:00+08:00",
        "category": "medical_reimbursement",
        "summary": "医药费无法报销",
        "details": None,
        "location": "郭坑镇",
        "accused": None,
        "disposition": {"action": "sign_over", "unit": "lw-guokeng"},
        "status": "open",
        "due_at": "2027-01-15T09:05:00+00:00",
        "repeat_of": None,
        "visitor_ref": "5f0c2a9e" * 8,
    }
    data.update(changes)
    return data


@pytest.fixture
def case_data():
    """Return a factory of ``case.registered`` payloads as intake publishes them."""
    return _case_data


def _case_registered(data: dict[str, Any] | None = None, **kwargs: Any) -> OutgoingEvent:
    data = data if data is not None else _case_data()
    kwargs.setdefault("subject", data.get("case_id") or "no-case")
    return envelope.build(service="intake", routing_key="case.registered", data=data, **kwargs)


@pytest.fixture
def case_registered():
    """Return a factory of ``case.registered`` events from intake (payload, then build args)."""
    return _case_registered


def received(event: OutgoingEvent) -> ReceivedEvent:
    """Decode an outgoing event as the consumer would receive it."""
    return envelope.decode(event.properties(), event.body, event.routing_key)


@pytest.fixture
def deliver(bare_runtime):
    """Return a function applying an event as the consumer does: once, then commit.

    It works on the test's runtime: ask for ``runtime`` too for a seeded directory.
    """

    def apply(event: OutgoingEvent) -> None:
        incoming = received(event)
        handler = handlers(bare_runtime)[incoming.routing_key]
        with bare_runtime.unit_of_work() as uow:
            if not uow.claim_application(incoming.id, "routing", incoming.type):
                return
            handler(uow, incoming)
            uow.commit()

    return apply


@pytest.fixture
def signed_over(deliver, case_data, case_registered, runtime):
    """Route one case to 郭坑镇 (signed over, or as changed); return its assignment id."""

    def make(**changes):
        data = case_data(**changes)
        deliver(case_registered(data))
        with runtime.sessions() as session:
            return session.scalars(
                select(models.Assignment.id).where(models.Assignment.case_id == data["case_id"])
            ).one()

    return make


@pytest.fixture
def seeding(runtime, database, monkeypatch):
    """Return a function running ``nighttalk routing seed --file <path>`` on the test database."""
    monkeypatch.setenv("ROUTING_DATABASE_URL", database)
    monkeypatch.setenv("AMQP_URL", NO_BROKER)

    def run(path: str):
        return CliRunner().invoke(group, ["seed", "--file", path, "--broker-wait", "0"])

    return run
