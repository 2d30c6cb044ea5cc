"""Fixtures of notify's tests: a migrated database, its runtime, and intake-shaped events."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select

from eventbus import envelope
from eventbus.envelope import OutgoingEvent
from notify import models
from notify.handlers import handlers
from servicekit import migrations
from servicekit.runtime import Runtime, make_runtime


@pytest.fixture
def database_url(make_database) -> str:
    """Return the URL of a fresh notify database at head."""
    url = make_database("notify")
    migrations.upgrade("notify", "notify", url)
    return url


@pytest.fixture
def runtime(database_url):
    rt = make_runtime("notify", models.metadata, database_url)
    yield rt
    rt.close()


@pytest.fixture
def deliver(runtime: Runtime) -> Callable[[OutgoingEvent], None]:
    """Return a function that applies an event the way the consumer does (inbox included)."""
    table = handlers(runtime)

    def apply(outgoing: OutgoingEvent) -> None:
        event = envelope.decode(outgoing.properties(), outgoing.body, outgoing.routing_key)
        with runtime.unit_of_work() as uow:
            if uow.already_applied(event.id, "notify"):
                return
            table[event.routing_key](uow, event)
            uow.mark_applied(event.id, "notify", event.type)
            uow.commit()

    return apply


@pytest.fixture
def notifications_of(runtime: Runtime) -> Callable[[str], list[models.Notification]]:
    """Return a function listing the notifications recorded for a case id."""

    def read(case_id: str) -> list[models.Notification]:
        with runtime.sessions() as session:
            return list(
                session.scalars(
                    select(models.Notification).where(models.Notification.case_id == case_id)
                )
            )

    return read
