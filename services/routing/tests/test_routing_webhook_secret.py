"""A webhook's signing secret: kept when the webhook is registered again, changed when asked."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from sqlalchemy import create_engine, insert
from test_routing_admin_retries_and_seed import waits_on_a_lock
from test_routing_webhooks import Receiver, partner

from routing import models, webhooks
from servicekit.auth import mint

HOOK = "/v1/units/lw-guokeng/webhook"
ADMIN = {"Authorization": f"Bearer {mint('city-org', ['admin'])}"}
OWN = partner("lw-guokeng")


@pytest.fixture
def receiver():
    """Start the partner's endpoint, answering 200; stop it at the end."""
    endpoint = Receiver([])
    endpoint.thread.start()
    yield endpoint
    endpoint.server.shutdown()
    endpoint.server.server_close()


def deliver_all(runtime) -> int:
    return webhooks.deliver_due(runtime.sessions, now=dt.datetime.now(dt.UTC))


def test_an_admin_registering_the_same_address_again_keeps_the_partners_secret(
    client, runtime, receiver, deliver, case_data, case_registered
):
    response = client.put(HOOK, headers=OWN, json={"url": receiver.url})
    assert response.status_code == 200, response.get_json()
    receiver.secret = response.get_json()["secret"]

    # An admin registers it again (to give messages given up another round, say).
    again = client.put(HOOK, headers=ADMIN, json={"url": receiver.url})

    assert again.status_code == 200, again.get_json()
    assert again.get_json()["secret"] == receiver.secret
    deliver(case_registered(case_data()))
    assert deliver_all(runtime) == 1
    [(headers, body)] = receiver.received
    assert receiver.verified(headers, body)  # the partner's check still passes


def test_a_mended_address_keeps_the_secret(client, receiver):
    first = client.put(HOOK, headers=OWN, json={"url": "http://127.0.0.1:1/hook"}).get_json()

    mended = client.put(HOOK, headers=OWN, json={"url": receiver.url}).get_json()

    assert mended["url"] == receiver.url and mended["secret"] == first["secret"]


def test_the_secret_changes_when_rotation_is_asked_for(
    client, runtime, receiver, deliver, case_data, case_registered
):
    old = client.put(HOOK, headers=OWN, json={"url": receiver.url}).get_json()["secret"]

    response = client.put(HOOK, headers=OWN, json={"url": receiver.url, "rotate_secret": True})

    assert response.status_code == 200, response.get_json()
    rotated = response.get_json()
    assert rotated["url"] == receiver.url and rotated["secret"] != old
    assert len(rotated["secret"]) >= 40
    receiver.secret = rotated["secret"]
    deliver(case_registered(case_data()))
    assert deliver_all(runtime) == 1
    [(headers, body)] = receiver.received
    assert receiver.verified(headers, body)
    # Registering again afterwards keeps the new secret.
    again = client.put(HOOK, headers=ADMIN, json={"url": receiver.url}).get_json()
    assert again["secret"] == rotated["secret"]


def test_a_new_registration_after_removal_gets_a_new_secret(client, receiver):
    old = client.put(HOOK, headers=OWN, json={"url": receiver.url}).get_json()["secret"]
    assert client.delete(HOOK, headers=OWN).status_code == 204

    new = client.put(HOOK, headers=OWN, json={"url": receiver.url}).get_json()["secret"]

    assert new != old


@pytest.mark.parametrize("rotate", ["yes", 1, None, "true"])
def test_rotation_is_asked_for_with_a_json_boolean(client, rotate):
    body = {"url": "https://partner.example/hook", "rotate_secret": rotate}

    response = client.put(HOOK, headers=OWN, json=body)

    assert response.status_code == 422
    assert "rotate_secret" in response.get_json()["errors"]["json"]


def test_two_first_registrations_at_once_answer_the_secret_that_was_kept(
    app, database, db_backend, receiver
):
    """A partner's retry of its first PUT, while the first is still at work, got a 500."""
    if db_backend == "sqlite":
        pytest.skip("SQLite writes one transaction at a time: no two registrations overlap")
    engine = create_engine(database)
    answers = []

    def register():
        answers.append(app.test_client().put(HOOK, headers=OWN, json={"url": receiver.url}))

    try:
        with engine.connect() as other:
            # The first registration, its transaction still open: its row holds the key.
            first = other.begin()
            other.execute(
                insert(models.Webhook).values(
                    unit="lw-guokeng",
                    url=receiver.url,
                    secret="the-first-registrations-secret",
                    updated_at=dt.datetime.now(dt.UTC),
                )
            )
            retry = threading.Thread(target=register)
            retry.start()
            for _ in range(400):  # at most 20 s: the retry waits on the first's key
                if waits_on_a_lock(engine):
                    break
                time.sleep(0.05)
            first.commit()
            retry.join()
    finally:
        engine.dispose()

    [answer] = answers
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["secret"] == "the-first-registrations-secret"
