"""Partner delivery by webhook: signed CloudEvents POSTed to a real HTTP server, retried."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cloudevents.core.bindings import http as ce_http
from sqlalchemy import select

from routing import models, webhooks
from routing.app import create_app
from servicekit.auth import mint

NIGHTTALK = str(Path(sys.executable).parent / "nighttalk")

NO_BROKER = "amqp://guest:guest@127.0.0.1:1/%2F"


class Receiver:
    """A partner's HTTP endpoint: checks each signature, answers from a script of statuses."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.landed: list[str] = []  # requests at the address a redirect points to
        self.secret = ""
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                # HTTP header names are case-insensitive: keep them in lower case.
                headers = {k.lower(): v for k, v in self.headers.items()}
                if self.path == "/landing":
                    receiver.landed.append(f"POST {len(body)} bytes")
                    return self._answer(200)
                receiver.received.append((headers, body))
                self._answer(receiver.statuses.pop(0) if receiver.statuses else 200)

            def do_GET(self):  # noqa: N802 - the http.server API
                receiver.landed.append(f"GET {self.path}")
                self._answer(200)

            def _answer(self, status):
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/landing")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/nighttalk"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def verified(self, headers: dict[str, str], body: bytes) -> bool:
        timestamp = headers[webhooks.TIMESTAMP.lower()]
        expected = hmac.new(self.secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
        return hmac.compare_digest(
            headers[webhooks.SIGNATURE.lower()], "sha256=" + expected.hexdigest()
        )


@pytest.fixture
def endpoints():
    """Return a function starting a partner's endpoint (a Receiver); all stop at the end."""
    started: list[Receiver] = []

    def start(statuses=()) -> Receiver:
        receiver = Receiver(list(statuses))
        receiver.thread.start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.server.shutdown()
        receiver.server.server_close()


@pytest.fixture
def receiver(endpoints):
    return endpoints([500])


def partner(unit: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(unit, ['partner'])}"}


def test_partner_messages_reach_the_webhook_signed_and_retried(
    client, runtime, receiver, deliver, case_data, case_registered
):
    response = client.put(
        "/v1/units/lw-guokeng/webhook", headers=partner("lw-guokeng"), json={"url": receiver.url}
    )
    assert response.status_code == 200, response.get_json()
    receiver.secret = response.get_json()["secret"]
    assert len(receiver.secret) >= 40
    data = case_data()
    deliver(case_registered(data))

    now = dt.datetime.now(dt.UTC)
    # The first attempt is answered 500: nothing delivered, retried later with backoff.
    assert webhooks.deliver_due(runtime.sessions, now=now) == 0
    with runtime.sessions() as session:
        [row] = session.scalars(select(models.WebhookDelivery)).all()
        assert row.attempts == 1 and row.last_error == "HTTP 500" and row.delivered_at is None
        assert row.next_attempt_at >= now
    later = now + dt.timedelta(hours=2)
    assert webhooks.deliver_due(runtime.sessions, now=later) == 1
    assert webhooks.deliver_due(runtime.sessions, now=later + dt.timedelta(hours=2)) == 0

    assert len(receiver.received) == 2
    for headers, body in receiver.received:
        assert receiver.verified(headers, body)
    headers, body = receiver.received[-1]
    event = ce_http.from_binary_event(ce_http.HTTPMessage(headers=headers, body=body))
    assert event.get_type() == "nighttalk.case.routed.v1"
    assert event.get_subject() == data["case_id"]
    assert event.get_data()["unit"] == "lw-guokeng"
    # A tampered body does not verify.
    assert not receiver.verified(headers, body.replace(b"lw-guokeng", b"lw-buwen"))


def test_units_without_a_webhook_get_no_deliveries(runtime, deliver, case_data, case_registered):
    deliver(case_registered(case_data()))
    with runtime.sessions() as session:
        assert session.scalars(select(models.WebhookDelivery)).all() == []


def test_a_dead_endpoint_is_given_up_after_the_attempts(
    client, runtime, deliver, case_data, case_registered, monkeypatch
):
    monkeypatch.setenv("ROUTING_WEBHOOK_MAX_ATTEMPTS", "2")
    # Port 1 on loopback: nothing listens, the connection is refused.
    client.put(
        "/v1/units/lw-guokeng/webhook",
        headers=partner("lw-guokeng"),
        json={"url": "http://127.0.0.1:1/hook"},
    )
    deliver(case_registered(case_data()))
    now = dt.datetime.now(dt.UTC)
    for hours in (0, 2, 4):
        webhooks.deliver_due(runtime.sessions, now=now + dt.timedelta(hours=hours))
    with runtime.sessions() as session:
        [row] = session.scalars(select(models.WebhookDelivery)).all()
        assert row.attempts == 2 and row.failed_at is not None
        assert row.last_error.startswith("NewConnectionError: ")
        assert "Connection refused" in row.last_error


# The standard library's client turned these three into a GET to the page they pointed
# to, without the body, and counted the page's 200 as the partner's.
@pytest.mark.parametrize("redirect", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_followed_and_the_message_is_tried_again_at_its_address(
    client, runtime, deliver, case_data, case_registered, redirect, endpoints
):
    receiver = endpoints([redirect])
    client.put(
        "/v1/units/lw-guokeng/webhook",
        headers=partner("lw-guokeng"),
        json={"url": receiver.url},
    )
    deliver(case_registered(case_data()))
    now = dt.datetime.now(dt.UTC)
    assert webhooks.deliver_due(runtime.sessions, now=now) == 0
    assert receiver.landed == []
    with runtime.sessions() as session:
        [row] = session.scalars(select(models.WebhookDelivery)).all()
        assert row.attempts == 1 and row.delivered_at is None and row.failed_at is None
        assert row.last_error == (
            f"HTTP {redirect} (a redirect, not followed: register the address it points to)"
        )
    # Tried again later at the registered address, which now takes it.
    assert webhooks.deliver_due(runtime.sessions, now=now + dt.timedelta(hours=2)) == 1
    assert len(receiver.received) == 2 and receiver.landed == []


class Hanging:
    """A partner's endpoint that takes the request and answers nothing until released."""

    def __init__(self) -> None:
        self.requests = 0
        self.released = threading.Event()
        hanging = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                self.rfile.read(int(self.headers["Content-Length"]))
                hanging.requests += 1
                hanging.released.wait(10)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/nighttalk"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


def test_an_endpoint_that_fails_is_tried_once_a_round_and_holds_up_no_other_unit(
    client, runtime, deliver, case_data, case_registered, monkeypatch, endpoints
):
    # Each message to an endpoint that answers nothing cost a whole timeout (10 s by
    # default): a partner's dead server held every other partner's cases for as many
    # timeouts as it had messages waiting.
    monkeypatch.setenv("ROUTING_WEBHOOK_TIMEOUT", "0.5")
    hanging, receiver = Hanging(), endpoints()
    try:
        for unit, url in (("lw-guokeng", hanging.url), ("lw-buwen", receiver.url)):
            response = client.put(
                f"/v1/units/{unit}/webhook", headers=partner(unit), json={"url": url}
            )
            assert response.status_code == 200, response.get_json()
        for _ in range(4):
            deliver(case_registered(case_data()))
        deliver(case_registered(case_data(disposition={"action": "sign_over", "unit": "lw-buwen"})))

        now = dt.datetime.now(dt.UTC)
        assert webhooks.deliver_due(runtime.sessions, now=now) == 1
        assert hanging.requests == 1 and len(receiver.received) == 1
        with runtime.sessions() as session:
            first, *waiting = session.scalars(
                select(models.WebhookDelivery)
                .where(models.WebhookDelivery.unit == "lw-guokeng")
                .order_by(models.WebhookDelivery.created_at)
            ).all()
            assert first.attempts == 1 and first.last_error.startswith("ReadTimeoutError: ")
            assert first.next_attempt_at > now
            # The others wait for the endpoint's next try, their attempts unspent.
            assert len(waiting) == 3
            assert {(row.attempts, row.next_attempt_at) for row in waiting} == {
                (0, first.next_attempt_at)
            }

        # The endpoint answers again: everything waiting for it goes at its next try.
        hanging.released.set()
        assert webhooks.deliver_due(runtime.sessions, now=now + dt.timedelta(hours=2)) == 4
        assert hanging.requests == 5
    finally:
        hanging.close()


def test_only_the_units_partner_or_an_admin_manage_its_webhook(client):
    body = {"url": "https://partner.example/hook"}
    assert (
        client.put(
            "/v1/units/lw-guokeng/webhook", headers=partner("lw-buwen"), json=body
        ).status_code
        == 403
    )
    admin = {"Authorization": f"Bearer {mint('city-org', ['admin'])}"}
    assert client.put("/v1/units/lw-guokeng/webhook", headers=admin, json=body).status_code == 200
    read = client.get("/v1/units/lw-guokeng/webhook", headers=partner("lw-guokeng")).get_json()
    assert read["url"] == body["url"] and "secret" not in read
    assert (
        client.get("/v1/units/lw-guokeng/webhook", headers=partner("lw-buwen")).status_code == 403
    )
    assert (
        client.delete("/v1/units/lw-guokeng/webhook", headers=partner("lw-guokeng")).status_code
        == 204
    )
    assert client.get("/v1/units/lw-guokeng/webhook", headers=admin).status_code == 404
    # Removing it again says what holds (there is none); only an unknown unit is a 404.
    assert client.delete("/v1/units/lw-guokeng/webhook", headers=admin).status_code == 204
    assert client.delete("/v1/units/nowhere/webhook", headers=admin).status_code == 404
    assert client.put("/v1/units/nowhere/webhook", headers=admin, json=body).status_code == 404


def test_the_webhook_shows_its_deliveries_and_registering_it_again_retries_those_given_up(
    client, runtime, deliver, case_data, case_registered, monkeypatch, endpoints
):
    monkeypatch.setenv("ROUTING_WEBHOOK_MAX_ATTEMPTS", "1")
    hook = "/v1/units/lw-guokeng/webhook"
    own = partner("lw-guokeng")
    client.put(hook, headers=own, json={"url": "http://127.0.0.1:1/hook"})
    assert client.get(hook, headers=own).get_json()["deliveries"] == {
        "waiting": 0,
        "failed": 0,
        "oldest_waiting_since": None,
        "last_error": None,
    }
    deliver(case_registered(case_data()))
    deliver(case_registered(case_data()))
    shown = client.get(hook, headers=own).get_json()["deliveries"]
    assert shown["waiting"] == 2 and shown["failed"] == 0 and shown["last_error"] is None
    assert shown["oldest_waiting_since"] is not None
    scraped = client.get("/metrics").get_data(as_text=True)
    assert 'nighttalk_webhook_deliveries{state="waiting",unit="lw-guokeng"} 2.0' in scraped
    assert 'nighttalk_webhook_oldest_waiting_age_seconds{unit="lw-guokeng"}' in scraped

    now = dt.datetime.now(dt.UTC)
    for hours in (0, 2):
        assert webhooks.deliver_due(runtime.sessions, now=now + dt.timedelta(hours=hours)) == 0
    shown = client.get(hook, headers=own).get_json()["deliveries"]
    assert shown["waiting"] == 0 and shown["failed"] == 2
    assert shown["oldest_waiting_since"] is None
    assert shown["last_error"].startswith("NewConnectionError: ")
    # The operator's view: a gauge per unit, read at scrape time.
    scraped = client.get("/metrics").get_data(as_text=True)
    assert 'nighttalk_webhook_deliveries{state="failed",unit="lw-guokeng"} 2.0' in scraped
    assert 'nighttalk_webhook_deliveries{state="waiting",unit="lw-guokeng"} 0.0' in scraped

    # The partner mends its endpoint and registers it: what was given up is sent there.
    receiver = endpoints()
    response = client.put(hook, headers=own, json={"url": receiver.url})
    assert response.get_json()["deliveries"]["waiting"] == 2
    assert response.get_json()["deliveries"]["failed"] == 0
    receiver.secret = response.get_json()["secret"]
    later = now + dt.timedelta(hours=4)
    assert webhooks.deliver_due(runtime.sessions, now=later) == 2
    assert len(receiver.received) == 2
    assert all(receiver.verified(headers, body) for headers, body in receiver.received)
    assert client.get(hook, headers=own).get_json()["deliveries"]["waiting"] == 0


def test_removing_the_webhook_drops_what_it_had_not_delivered(
    client, runtime, deliver, case_data, case_registered, endpoints
):
    hook = "/v1/units/lw-guokeng/webhook"
    own = partner("lw-guokeng")
    client.put(hook, headers=own, json={"url": "http://127.0.0.1:1/hook"})
    deliver(case_registered(case_data()))
    assert client.delete(hook, headers=own).status_code == 204
    receiver = endpoints()
    # Registered again: only messages of the new registration go there.
    response = client.put(hook, headers=own, json={"url": receiver.url})
    assert response.get_json()["deliveries"]["waiting"] == 0
    deliver(case_registered(case_data()))
    assert webhooks.deliver_due(runtime.sessions) == 1
    assert len(receiver.received) == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8101/v1/visits",
        "http://localhost:5432/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/hook",
        "http://192.168.0.7:8080/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_a_webhook_into_a_network_not_allowed_is_refused(client, url, monkeypatch):
    # A partner sees how its deliveries fail: an address on the services' own network
    # would make routing its probe of that network.
    monkeypatch.setenv("ROUTING_WEBHOOK_ALLOWED_NETWORKS", "")
    hook, own = "/v1/units/lw-guokeng/webhook", partner("lw-guokeng")
    response = client.put(hook, headers=own, json={"url": url})
    assert response.status_code == 422
    [message] = response.get_json()["errors"]["json"]["url"]
    assert message.startswith("refused: address ") and "ROUTING_WEBHOOK_ALLOWED_NETWORKS" in message
    # A public address or name is taken; a listed network is, too.
    assert client.put(hook, headers=own, json={"url": "https://8.8.8.8/hook"}).status_code == 200
    assert (
        client.put(hook, headers=own, json={"url": "https://partner.example/h"}).status_code == 200
    )
    monkeypatch.setenv("ROUTING_WEBHOOK_ALLOWED_NETWORKS", "10.0.0.0/8, 192.168.0.0/16")
    assert client.put(hook, headers=own, json={"url": "http://10.1.2.3/hook"}).status_code == 200


def test_an_attempt_at_an_address_no_longer_allowed_is_not_sent(
    client, runtime, deliver, case_data, case_registered, monkeypatch, endpoints
):
    receiver = endpoints()
    client.put(
        "/v1/units/lw-guokeng/webhook",
        headers=partner("lw-guokeng"),
        json={"url": receiver.url},
    )
    deliver(case_registered(case_data()))
    # The operator narrows the networks allowed (or a name now resolves inside them).
    monkeypatch.setenv("ROUTING_WEBHOOK_ALLOWED_NETWORKS", "10.0.0.0/8")
    assert webhooks.deliver_due(runtime.sessions) == 0
    assert receiver.received == []
    with runtime.sessions() as session:
        [row] = session.scalars(select(models.WebhookDelivery)).all()
        assert row.attempts == 1 and row.last_error == (
            "address 127.0.0.1 is not on the public internet nor in "
            "ROUTING_WEBHOOK_ALLOWED_NETWORKS"
        )


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"url": "ftp://x/y"},
        {"url": "not a url"},
        {"url": "https://x/" + "a" * 500},
        {"url": "https://x/", "secret": "s"},
    ],
)
def test_bad_webhooks_are_refused(client, body):
    response = client.put("/v1/units/lw-guokeng/webhook", headers=partner("lw-guokeng"), json=body)
    assert response.status_code == 422


def test_the_webhooks_process_delivers_and_stops_on_sigterm(
    runtime, database, deliver, case_data, case_registered, endpoints
):
    receiver = endpoints()
    app = create_app({"DATABASE_URL": database, "AMQP_URL": NO_BROKER, "TESTING": True})
    try:
        response = app.test_client().put(
            "/v1/units/lw-guokeng/webhook",
            headers=partner("lw-guokeng"),
            json={"url": receiver.url},
        )
        receiver.secret = response.get_json()["secret"]
        deliver(case_registered(case_data()))
        env = {**os.environ, "ROUTING_DATABASE_URL": database, "AMQP_URL": NO_BROKER}
        process = subprocess.Popen(  # noqa: S603
            [NIGHTTALK, "routing", "webhooks", "--interval", "0.1"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while not receiver.received and time.monotonic() < deadline:
                time.sleep(0.05)  # waiting on another process, not on the hot path
            assert receiver.received, "the webhooks process delivered nothing"
        finally:
            process.send_signal(signal.SIGTERM)
            output = process.communicate(timeout=30)[0].decode()
        assert process.returncode == 0, output
        headers, body = receiver.received[0]
        assert receiver.verified(headers, body)
        assert headers["ce-type"] == "nighttalk.case.routed.v1"
        assert webhooks.SIGNATURE.lower() in headers
    finally:
        app.extensions["runtime"].close()
