"""Every event a producer can publish is read by every consumer bound to it.

DESIGN.md: payload schemas belong to the producer; each consumer validates what it reads
with its own schema. That only holds together if no consumer refuses what its producer
accepts at its door: a payload one consumer finds too long is dead-lettered there and its
effect lost (an answer the visitor never hears, a case supervision still counts as open).

This test drives the four services through their own APIs with every text at the longest
its producer's input schema allows (read from the schema, so a limit changed on one side
fails here), then hands each event from the outboxes to every consumer bound to it, as the
consumer does (its inbox claim, its handler, its commit). No consumer may refuse one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json

import pika
import pytest
from marshmallow import validate
from sqlalchemy import select, text

from eventbus import envelope, names, testing
from eventbus.envelope import PoisonMessage
from servicekit import auth, migrations

SERVICES = ("intake", "routing", "supervision", "notify")
NO_BROKER = "amqp://guest:guest@127.0.0.1:1/%2F"  # the apps write outboxes; nothing relays
# The longest subject a token may carry: routing publishes it as an action's `by`.
SUBJECT = "lw-guokeng:" + "办" * (auth.MAX_SUBJECT - len("lw-guokeng:"))


def longest(schema, field: str) -> int:
    """Return the most characters ``schema`` accepts in ``field`` (its Length validator)."""
    found = schema._declared_fields[field]
    validators = found.validators if hasattr(found, "validators") else [found.validate]
    lengths = [v.max for v in validators if isinstance(v, validate.Length) and v.max]
    assert lengths, f"{schema.__name__}.{field} has no length bound"
    return min(lengths)


def filled(schema, field: str, char: str = "字") -> str:
    return char * longest(schema, field)


def bearer(unit: str, *roles: str, sub: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {auth.mint(unit, list(roles), sub=sub)}"}


class System:
    """The four services in this process, each on its own database, events carried by hand."""

    def __init__(self, urls: dict[str, str]) -> None:
        from intake.app import create_app as intake_app
        from intake.handlers import handlers as intake_handlers
        from notify.app import create_app as notify_app
        from notify.handlers import handlers as notify_handlers
        from routing.app import create_app as routing_app
        from routing.handlers import handlers as routing_handlers
        from supervision.app import create_app as supervision_app
        from supervision.handlers import handlers as supervision_handlers

        apps = {
            "intake": intake_app,
            "routing": routing_app,
            "supervision": supervision_app,
            "notify": notify_app,
        }
        tables = {
            "intake": intake_handlers,
            "routing": routing_handlers,
            "supervision": supervision_handlers,
            "notify": notify_handlers,
        }
        self.clients, self.runtimes, self.handlers = {}, {}, {}
        for service in SERVICES:
            migrations.upgrade(service, service, urls[service])
            app = apps[service](
                {"DATABASE_URL": urls[service], "AMQP_URL": NO_BROKER, "TESTING": True}
            )
            self.clients[service] = app.test_client()
            self.runtimes[service] = app.extensions["runtime"]
            self.handlers[service] = tables[service](self.runtimes[service])
        self.read = dict.fromkeys(SERVICES, 0)
        self.refused: list[tuple[str, str, str]] = []
        self.applied: dict[str, set[str]] = {service: set() for service in SERVICES}

    def seed_units(self) -> None:
        from routing import directory
        from routing import events as routing_events
        from routing import models as routing_models

        with self.runtimes["routing"].unit_of_work() as uow:
            result = directory.seed(uow.session, directory.load_units())
            for unit in result.changed:
                for out in routing_events.to_integration(routing_models.UnitChanged(unit)):
                    uow.emit(out)
            uow.commit()

    def carry(self) -> None:
        """Hand every new outbox event to every consumer bound to it, until none is left."""
        while True:
            batch = []
            for service in SERVICES:
                with self.runtimes[service].engine.connect() as conn:
                    rows = conn.execute(
                        text(
                            "select position, event_id, exchange, routing_key, headers, body "
                            "from outbox where position > :p order by position"
                        ),
                        {"p": self.read[service]},
                    ).all()
                for row in rows:
                    self.read[service] = row.position
                    if row.exchange == names.PARTNERS_EXCHANGE:
                        continue  # partners decode with the SDK: tested in the proof suite
                    headers = row.headers
                    if not isinstance(headers, dict):
                        headers = json.loads(headers)
                    properties = pika.BasicProperties(
                        headers=headers,
                        content_type="application/json",
                        message_id=row.event_id,
                    )
                    batch.append(envelope.decode(properties, bytes(row.body), row.routing_key))
            if not batch:
                return
            for event in batch:
                self.deliver(event)

    def deliver(self, event) -> None:
        for consumer in SERVICES:
            handler = self.handlers[consumer].get(event.routing_key)
            if handler is None:
                continue
            runtime = self.runtimes[consumer]
            try:
                with runtime.unit_of_work() as uow:
                    if uow.claim_application(event.id, consumer, event.type):
                        handler(uow, event)
                        uow.commit()
            except PoisonMessage as exc:
                self.refused.append((event.routing_key, consumer, str(exc)[:500]))
            else:
                self.applied[consumer].add(event.routing_key)


@pytest.fixture
def system(db_backend, tmp_path):
    with contextlib.ExitStack() as stack:
        urls = {
            service: stack.enter_context(
                testing.temporary_database(db_backend, f"contract_{service}", str(tmp_path))
            )
            for service in SERVICES
        }
        built = System(urls)
        try:
            built.seed_units()
            built.carry()
            yield built
        finally:
            for runtime in built.runtimes.values():
                runtime.engine.dispose()


def lead_assignment(system: System, case_id: str) -> str:
    from routing import models

    with system.runtimes["routing"].sessions() as session:
        return session.scalars(
            select(models.Assignment.id).where(
                models.Assignment.case_id == case_id,
                models.Assignment.role == "lead",
                models.Assignment.superseded_by.is_(None),
            )
        ).one()


def test_every_consumer_reads_the_longest_payloads_its_producers_accept(system):
    from intake import schemas as intake_schemas
    from routing import schemas as routing_schemas
    from supervision import schemas as supervision_schemas

    def issue(**disposition):
        return {
            "category": "demolition_compensation",
            "summary": filled(intake_schemas.IssueIn, "summary"),
            "details": filled(intake_schemas.IssueIn, "details"),
            "location": filled(intake_schemas.IssueIn, "location"),
            "accused": {"person": filled(intake_schemas.AccusedIn, "person")},
            "disposition": disposition,
        }

    visit = {
        "channel": "night_talk",
        "received_at": "2026-11-15T17:05:00+08:00",
        "leader": filled(intake_schemas.VisitIn, "leader"),
        "headcount": 5,
        "visitor": {
            "name": filled(intake_schemas.VisitorIn, "name", "林"),
            "phone": "13905961234",
            "id_number": "350602195001011234",
            "address": filled(intake_schemas.VisitorIn, "address"),
        },
        "issues": [
            issue(action="resolved_on_spot", answer=filled(intake_schemas.DispositionIn, "answer")),
            issue(action="sign_over", unit="lw-guokeng"),
            issue(action="sign_over", unit="lw-guokeng"),
        ],
    }
    response = system.clients["intake"].post(
        "/v1/visits", json=visit, headers=bearer("city-org", "reception")
    )
    assert response.status_code == 201, response.get_json()
    on_spot, resolved, escalated = (case["case_id"] for case in response.get_json()["cases"])
    system.carry()
    assert system.refused == []

    routing = system.clients["routing"]
    partner = bearer("lw-guokeng", "partner", sub=SUBJECT)
    reason = filled(routing_schemas.ReturnIn, "reason")

    def act(assignment: str, action: str, body: dict, headers=partner) -> None:
        response = routing.post(
            f"/v1/assignments/{assignment}/{action}", json=body, headers=headers
        )
        assert response.status_code in (200, 201), (action, response.get_json())

    first = lead_assignment(system, resolved)
    act(first, "accept", {})
    act(first, "progress", {"note": filled(routing_schemas.ProgressIn, "note")})
    act(first, "extension", {"days": 10, "reason": reason})
    act(first, "co-handlers", {"unit": "lw-buwen", "reason": reason})
    act(first, "resolve", {"answer": filled(routing_schemas.ResolveIn, "answer")})
    second = lead_assignment(system, escalated)
    act(second, "transfer", {"to_unit": "lw-buwen", "reason": reason})
    act(
        lead_assignment(system, escalated),
        "return",
        {"reason": reason},
        headers=bearer("lw-buwen", "partner", sub="lw-buwen:" + "办" * 80),
    )
    system.carry()
    assert system.refused == []

    supervision = system.clients["supervision"]
    admin = bearer("city-org", "admin")
    response = supervision.put(
        f"/v1/cases/{escalated}/supervisor",
        json={
            "supervisor": filled(supervision_schemas.SupervisorIn, "supervisor"),
            "supervisor_unit": "city-org",
        },
        headers=admin,
    )
    assert response.status_code == 200, response.get_json()
    response = supervision.post(
        "/v1/meetings/2026-11/decisions",
        json={
            "case": escalated,
            "decision": "reassign",
            "unit": "lw-guokeng",
            "note": filled(supervision_schemas.DecisionIn, "note"),
        },
        headers=admin,
    )
    assert response.status_code == 201, response.get_json()
    response = supervision.post(
        f"/v1/cases/{resolved}/feedback",
        json={"satisfied": False, "comment": filled(supervision_schemas.FeedbackIn, "comment")},
        headers=bearer("city-org", "reception"),
    )
    assert response.status_code == 200, response.get_json()
    # The visitor is not satisfied with the answer given on the spot either: it reopens.
    response = supervision.post(
        f"/v1/cases/{on_spot}/feedback",
        json={"satisfied": False, "comment": filled(supervision_schemas.FeedbackIn, "comment")},
        headers=bearer("city-org", "reception"),
    )
    assert response.status_code == 200, response.get_json()
    system.carry()
    assert system.refused == []
    # Sweep far ahead: the escalated case's warning, overdue and listed supervision.
    from supervision import ladder

    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    assert ladder.sweep(system.runtimes["supervision"], later).fired
    system.carry()

    assert system.refused == []
    # The run produced what it meant to: each consumer applied the events it binds to.
    assert {
        "case.registered",
        "case.resolved_on_spot",
        "case.routed",
        "assignment.accepted",
        "assignment.progressed",
        "assignment.extension_granted",
        "assignment.resolved",
        "assignment.transferred",
        "assignment.returned",
        "case.warning",
        "case.overdue",
        "case.escalated",
        "meeting.decision_recorded",
        "case.reopened",
    } <= set().union(*system.applied.values())
    assert {"case.routed", "assignment.resolved", "case.escalated"} <= system.applied["notify"]
    assert {"assignment.resolved", "case.routed"} <= system.applied["supervision"]
    assert {"meeting.decision_recorded", "case.reopened"} <= system.applied["routing"]
