"""``nighttalk broker``: the definitions follow the user and password compose connects as."""

from __future__ import annotations

import base64
import json

from click.testing import CliRunner

from eventbus import definitions
from servicekit.cli import main


def _definitions(env: dict[str, str | None], *args: str) -> dict:
    args = ("broker", "definitions", "--salt", "01020304", *args)
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_definitions_take_the_user_and_password_compose_connects_with():
    # compose builds AMQP_URL from RABBITMQ_USER and RABBITMQ_PASSWORD (deploy/.env).
    body = _definitions({"RABBITMQ_USER": "ntsvc", "RABBITMQ_PASSWORD": "S3cure"})
    [user] = body["users"]
    assert user["name"] == "ntsvc"
    salt = base64.b64decode(user["password_hash"])[:4]
    assert user["password_hash"] == definitions.password_hash("S3cure", salt)
    assert {p["user"] for p in body["permissions"]} == {"ntsvc"}


def test_definitions_default_to_compose_defaults_and_options_win():
    body = _definitions({"RABBITMQ_USER": None, "RABBITMQ_PASSWORD": None})
    [user] = body["users"]
    assert user["name"] == "nighttalk"
    assert user["password_hash"] == definitions.password_hash("nighttalk", bytes([1, 2, 3, 4]))
    body = _definitions({"RABBITMQ_USER": "ntsvc"}, "--user", "other")
    assert [u["name"] for u in body["users"]] == ["other"]


def test_declare_with_the_broker_out_of_reach_is_one_line_and_status_1_not_a_traceback(amqp_url):
    for url in (
        "amqp://guest:guest@127.0.0.1:1/%2F",
        amqp_url.replace("guest:guest@", "guest:not-the-password@"),
    ):
        result = CliRunner().invoke(main, ["broker", "declare"], env={"AMQP_URL": url})
        assert result.exit_code == 1
        assert isinstance(result.exception, SystemExit), result.exception
        assert result.stderr.startswith("Error: broker unreachable: "), result.stderr
        assert len(result.stderr.splitlines()) == 1


def test_declare_with_an_amqp_setting_it_cannot_read_names_it():
    result = CliRunner().invoke(main, ["broker", "declare"], env={"AMQP_HEARTBEAT": "abc"})
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: AMQP_HEARTBEAT must be"), result.stderr
    result = CliRunner().invoke(main, ["broker", "declare"], env={"AMQP_URL": "amqp://h:x/"})
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: AMQP_URL cannot be read: "), result.stderr
