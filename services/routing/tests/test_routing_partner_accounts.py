"""Partner broker accounts: RabbitMQ itself refuses a partner everything but its own queue."""

from __future__ import annotations

import json
import urllib.parse
import uuid
from pathlib import Path

import pika
import pika.exceptions
import pytest
from click.testing import CliRunner

from eventbus import names, testing
from eventbus.connection import connect
from routing.cli import group

NAMED_UNITS = Path(__file__).parent / "data" / "units_named.json"


def as_user(amqp_url: str, user: str, password: str) -> str:
    parts = urllib.parse.urlparse(amqp_url)
    netloc = f"{user}:{urllib.parse.quote(password, safe='')}@{parts.hostname}:{parts.port}"
    return parts._replace(netloc=netloc).geturl()


@pytest.fixture
def account(database, amqp_url, monkeypatch):
    """Seed the directory, then create 郭坑镇's account; yield its AMQP URL; revoke it."""
    monkeypatch.setenv("AMQP_URL", amqp_url)
    monkeypatch.setenv("ROUTING_DATABASE_URL", database)
    runner = CliRunner()
    seeded = runner.invoke(group, ["seed", "--file", str(NAMED_UNITS)], catch_exceptions=False)
    assert seeded.exit_code == 0, seeded.output
    created = runner.invoke(group, ["partner-account", "create", "lw-guokeng"])
    assert created.exit_code == 0, created.output
    lines = dict(line.split(": ", 1) for line in created.output.splitlines() if ": " in line)
    assert lines["user"] == "partner-lw-guokeng"
    yield as_user(amqp_url, lines["user"], lines["password"])
    runner.invoke(group, ["partner-account", "revoke", "lw-guokeng"])


def refused(action) -> bool:
    try:
        action()
    except pika.exceptions.ChannelClosedByBroker as exc:
        return exc.reply_code == 403
    return False


def test_a_partner_account_consumes_only_its_own_queue(account, amqp_url):
    probe = uuid.uuid4().hex
    testing.publish_raw(
        amqp_url, names.PARTNERS_EXCHANGE, "lw-guokeng.case.routed", json.dumps(probe).encode()
    )
    testing.publish_raw(amqp_url, names.PARTNERS_EXCHANGE, "lw-buwen.case.routed", b'"theirs"')
    conn = connect(account)
    try:
        # Its own queue: readable.
        [message] = testing.get_messages(account, "partner.lw-guokeng", count=1, timeout=10)
        assert json.loads(message[2]) == probe
        # Everything else: refused by the broker itself.
        assert refused(lambda: conn.channel().basic_get("partner.lw-buwen"))
        assert refused(lambda: conn.channel().basic_consume("partner.lw-buwen", lambda *a: None))
        assert refused(lambda: conn.channel().queue_declare("partner.lw-guokeng.mine"))
        assert refused(
            lambda: conn.channel().queue_bind(
                "partner.lw-guokeng", names.PARTNERS_EXCHANGE, routing_key="lw-buwen.#"
            )
        )
        assert refused(lambda: conn.channel().queue_delete("partner.lw-guokeng"))

        def publish():
            channel = conn.channel()
            channel.confirm_delivery()
            channel.basic_publish(names.PARTNERS_EXCHANGE, "lw-buwen.case.routed", b"forged")

        assert refused(publish)
    finally:
        if conn.is_open:
            conn.close()
    # The other unit's message is still there, untouched.
    [theirs] = testing.get_messages(amqp_url, "partner.lw-buwen", count=1, timeout=10)
    assert theirs[2] == b'"theirs"'


def test_a_revoked_account_cannot_connect(account):
    result = CliRunner().invoke(group, ["partner-account", "revoke", "lw-guokeng"])
    assert result.exit_code == 0 and "revoked" in result.output
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        connect(account)


def test_an_account_for_an_unknown_unit_is_refused(database, amqp_url, monkeypatch):
    monkeypatch.setenv("AMQP_URL", amqp_url)
    monkeypatch.setenv("ROUTING_DATABASE_URL", database)
    result = CliRunner().invoke(group, ["partner-account", "create", "nowhere"])
    assert result.exit_code != 0 and "not an active unit" in result.output


def test_without_rabbitmqctl_the_error_says_what_to_do(monkeypatch):
    from routing import broker_accounts

    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(broker_accounts.BrokerAccountError, match="rabbitmqctl not found"):
        broker_accounts.revoke("lw-guokeng")


def test_an_account_for_a_unit_without_a_queue_is_refused(runtime, database, amqp_url, monkeypatch):
    from routing import broker_accounts, models

    # 步文镇 reads its cases from /v1/inbox (or a webhook) with its partner token.
    with runtime.sessions() as session:
        session.get(models.Unit, "lw-buwen").amqp = False
        session.commit()
    monkeypatch.setenv("AMQP_URL", amqp_url)
    monkeypatch.setenv("ROUTING_DATABASE_URL", database)

    result = CliRunner().invoke(group, ["partner-account", "create", "lw-buwen"])
    # Revoked at once, so that a broker user made anyway is not left behind.
    made = broker_accounts.revoke("lw-buwen")

    assert result.exit_code != 0, result.output
    assert "'lw-buwen' does not read its cases by AMQP" in result.output
    assert "password" not in result.output
    assert made is False  # no broker user with a password that opens nothing
