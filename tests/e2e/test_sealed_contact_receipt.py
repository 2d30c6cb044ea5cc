"""A visit's contact goes from intake to notify sealed, and the visitor still gets the receipt SMS.

In one process, over the real RabbitMQ and real databases: intake's API and its publisher,
notify's consumer and delivery worker, and an HTTP SMS gateway of the test's own.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import create_engine, select, text

from eventbus import testing
from intake.app import create_app
from notify import models as notify_models
from notify.channels import SmsGateway
from notify.delivery import Settings, Worker
from notify.handlers import handlers as notify_handlers
from servicekit import auth, migrations
from servicekit.runtime import make_runtime

NAME, PHONE, ADDRESS = "林河清", "13905961234", "郭坑镇"

VISIT = {
    "channel": "daily",
    "received_at": "2026-11-20T10:05:00+08:00",
    "headcount": 1,
    "visitor": {
        "name": NAME,
        "phone": PHONE,
        "id_number": "350602195001011234",
        "address": ADDRESS,
    },
    "issues": [
        {
            "category": "wage_arrears",
            "summary": "退休教师工资拖欠",
            "disposition": {"action": "route"},
        }
    ],
}


class RecordingGateway:
    """An HTTP SMS gateway that keeps what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", "0"))
                gateway.sent.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass  # the requests carry phone numbers

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sms"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def amqp_url():
    """A vhost of this module's own: the e2e system's processes, which the session keeps
    running, consume the session's ``notify`` queue and would take the contact first."""
    with testing.temporary_vhost() as url:
        yield url


@pytest.fixture
def intake(make_database, amqp_url):
    url = make_database("intake")
    migrations.upgrade("intake", "intake", url)
    app = create_app({"TESTING": True, "DATABASE_URL": url, "AMQP_URL": amqp_url})
    yield app, url
    app.extensions["runtime"].close()


@pytest.fixture
def notify(make_database, amqp_url):
    url = make_database("notify")
    migrations.upgrade("notify", "notify", url)
    runtime = make_runtime("notify", notify_models.metadata, url, amqp_url)
    with testing.running_consumer(
        service="notify",
        handlers=notify_handlers(runtime),
        unit_of_work=runtime.unit_of_work,
        url=amqp_url,
    ):
        yield runtime
    runtime.close()


@pytest.fixture
def gateway():
    server = RecordingGateway()
    yield server
    server.close()


def test_the_visitor_gets_the_receipt_sms_though_the_contact_travels_sealed(
    intake, notify, gateway
):
    app, intake_url = intake
    reception = {"Authorization": f"Bearer {auth.mint('city-org', ['reception'])}"}

    r = app.test_client().post("/v1/visits", json=VISIT, headers=reception)
    assert r.status_code == 201, r.get_json()
    (case,) = r.get_json()["cases"]

    def receipt_pending():
        n = notify_models.Notification
        with notify.sessions() as session:
            statuses = session.scalars(
                select(n.status).where(n.case_id == case["case_id"], n.kind == "receipt")
            ).all()
        return statuses == [notify_models.PENDING]

    testing.eventually(receipt_pending, "notify addressed the receipt to the visitor's phone")
    # No quiet hours: the receipt goes now, whatever the hour the suite runs.
    settings = Settings(quiet_start=dt.time(0, 0), quiet_end=dt.time(0, 0))
    worker = Worker(notify, {notify_models.SMS: SmsGateway(url=gateway.url)}, settings)
    assert worker.drain() >= 1
    receipts = [m for m in gateway.sent if case["case_number"] in m["text"]]
    assert [m["to"] for m in receipts] == [PHONE]

    # And on its way the contact was nowhere in clear: not in intake's outbox.
    engine = create_engine(intake_url)
    try:
        with engine.connect() as conn:
            bodies = [bytes(b).decode() for (b,) in conn.execute(text("SELECT body FROM outbox"))]
    finally:
        engine.dispose()
    assert bodies
    for clear in (NAME, PHONE, ADDRESS):
        assert not any(clear in body for body in bodies), "a visitor's contact in clear"
