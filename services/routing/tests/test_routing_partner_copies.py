"""What a unit is sent: AMQP partners and webhook-only partners each get their cases."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading

import pytest
from sqlalchemy import select

from routing import models, webhooks
from servicekit.auth import mint


def bearer(unit: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(unit, list(roles), sub=f'{unit}:clerk')}"}


ADMIN = bearer("city-org", "admin")


@pytest.fixture
def endpoint():
    """Start a partner's HTTP endpoint that records the bodies POSTed to it; stop it after."""
    received: list[bytes] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server API
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.received = received
    server.url = f"http://127.0.0.1:{server.server_address[1]}/nighttalk"
    yield server
    server.shutdown()
    server.server_close()


def partner_copies(runtime) -> list[str]:
    table = models.metadata.tables["outbox"]
    with runtime.engine.connect() as conn:
        rows = conn.execute(
            select(table.c.routing_key).where(table.c.exchange == "nighttalk.partners")
        )
        return [row.routing_key for row in rows]


def test_a_webhook_unit_without_amqp_gets_its_cases_posted(
    client, runtime, endpoint, deliver, case_data, case_registered
):
    response = client.patch("/v1/units/lw-guokeng", headers=ADMIN, json={"amqp": False})
    assert response.status_code == 200 and response.get_json()["amqp"] is False
    response = client.put(
        "/v1/units/lw-guokeng/webhook",
        headers=bearer("lw-guokeng", "partner"),
        json={"url": endpoint.url},
    )
    assert response.status_code == 200, response.get_json()
    data = case_data()
    deliver(case_registered(data))

    assert webhooks.deliver_due(runtime.sessions, now=dt.datetime.now(dt.UTC)) == 1
    [body] = endpoint.received
    assert json.loads(body)["case_id"] == data["case_id"]
    # No queue partner.lw-guokeng exists: nothing is published for one.
    assert partner_copies(runtime) == []


def test_an_amqp_unit_with_a_webhook_gets_both(
    client, runtime, endpoint, deliver, case_data, case_registered
):
    response = client.put("/v1/units/lw-guokeng/webhook", headers=ADMIN, json={"url": endpoint.url})
    assert response.status_code == 200, response.get_json()
    deliver(case_registered(case_data()))

    assert partner_copies(runtime) == ["lw-guokeng.case.routed"]
    assert webhooks.deliver_due(runtime.sessions, now=dt.datetime.now(dt.UTC)) == 1


def test_a_unit_without_amqp_or_webhook_gets_no_copy(
    client, runtime, deliver, case_data, case_registered
):
    response = client.patch("/v1/units/lw-guokeng", headers=ADMIN, json={"amqp": False})
    assert response.status_code == 200
    deliver(case_registered(case_data()))

    assert partner_copies(runtime) == []
    with runtime.sessions() as session:
        assert session.scalars(select(models.WebhookDelivery)).all() == []
