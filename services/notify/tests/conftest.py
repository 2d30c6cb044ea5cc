"""Fixtures of notify's tests: a migrated database, its runtime, and intake-shaped events."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from notify_sample_events import LEADER_EMAIL, UNIT_EMAIL, unit_changed
from notify_test_servers import DAYTIME, PARTNER, SECRET, Clock, HttpReceiver, SmtpServer
from sqlalchemy import select

from eventbus import envelope, testing
from eventbus.envelope import OutgoingEvent
from notify import models
from notify.channels import LetterPrinter, SmsGateway, Smtp, Webhook
from notify.delivery import Settings, Worker
from notify.handlers import handlers
from servicekit import migrations
from servicekit.runtime import Runtime, make_runtime


@pytest.fixture
def database_url(make_database) -> str:
    """Return the URL of a fresh notify database at head."""
    url = make_database("notify")
    migrations.upgrade("notify", "notify", url)
    return url


# Where these tests' runtime publishes after a commit: nowhere (a closed port), so the
# events stay in the outbox, where the tests read them; the consumer tests use the
# real broker, and the relay's publishing is eventbus's to test.
NO_BROKER = "amqp://guest:guest@127.0.0.1:9/"


@pytest.fixture
def runtime(database_url):
    """Return notify's runtime on the test database; outgoing events stay in the outbox."""
    rt = make_runtime("notify", models.metadata, database_url, NO_BROKER)
    yield rt
    rt.close()


@pytest.fixture
def deliver(runtime: Runtime) -> Callable[[OutgoingEvent], None]:
    """Return a function that applies an event the way the consumer does (inbox included)."""
    table = handlers(runtime)

    def apply(outgoing: OutgoingEvent) -> None:
        event = envelope.decode(outgoing.properties(), outgoing.body, outgoing.routing_key)
        with runtime.unit_of_work() as uow:
            if not uow.claim_application(event.id, "notify", event.type):
                return
            table[event.routing_key](uow, event)
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


@pytest.fixture
def gateway():
    server = HttpReceiver()
    yield server
    server.close()


@pytest.fixture
def partner_hook():
    server = HttpReceiver(secret=SECRET)
    yield server
    server.close()


@pytest.fixture
def smtp():
    server = SmtpServer()
    yield server
    server.close()


@pytest.fixture
def clock() -> Clock:
    return Clock(DAYTIME)


@pytest.fixture
def make_worker(runtime, gateway, smtp, clock):
    def make(**settings) -> Worker:
        channels = {
            models.SMS: SmsGateway(url=gateway.url, token="gw-token", timeout=5, dedupes=True),
            models.EMAIL: Smtp(host="127.0.0.1", port=smtp.port, sender="nighttalk@test"),
            models.WEBHOOK: Webhook(secret=SECRET, timeout=5),
            models.LETTER: LetterPrinter(),
        }
        return Worker(runtime, channels, Settings(**settings), clock=clock)

    return make


@pytest.fixture
def partner_unit(deliver, partner_hook):
    """A unit with an office e-mail and a webhook, and a city unit whose leader has e-mail."""
    deliver(unit_changed(PARTNER, email=UNIT_EMAIL, webhook_url=partner_hook.url))
    deliver(unit_changed("city-org", name="市委组织部", leader="黄宝山", leader_email=LEADER_EMAIL))
    return PARTNER


@pytest.fixture
def consumer(runtime, amqp_url):
    """Run notify's consumer in a thread until the test ends."""
    with testing.running_consumer(
        service="notify",
        handlers=handlers(runtime),
        unit_of_work=runtime.unit_of_work,
        url=amqp_url,
    ) as running:
        yield running
