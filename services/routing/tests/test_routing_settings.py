"""A bad number among routing's settings stops its processes at start, naming it.

Read at each use, a bad one failed every transfer, extension or webhook delivery instead
(a 500, or an event retried to the dead letters) while the process looked healthy.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from routing import egress, usecases, webhooks
from routing.app import create_app
from servicekit.testing import start_refused

BAD_SETTINGS = [
    ("ROUTING_MAX_MOVES", "two"),
    ("ROUTING_MAX_MOVES", "-1"),
    ("ROUTING_AUTO_EXTENSION_DAYS", "15d"),
    ("ROUTING_AUTO_EXTENSION_DAYS", "-15"),
    ("ROUTING_WEBHOOK_MAX_ATTEMPTS", "0"),
    ("ROUTING_WEBHOOK_TIMEOUT", "10s"),
    ("ROUTING_WEBHOOK_TIMEOUT", "0"),
    # A common way to write 10.20.0.0/16 that Python refuses (host bits set): it used to
    # switch the address fence off (read as "a name, checked later") and crash the sender.
    ("ROUTING_WEBHOOK_ALLOWED_NETWORKS", "10.20.0.1/16"),
    ("ROUTING_WEBHOOK_ALLOWED_NETWORKS", "10.20.0.0/16, intranet"),
]


@pytest.mark.parametrize(("variable", "value"), BAD_SETTINGS)
def test_a_bad_setting_stops_the_api_at_start_naming_it(
    monkeypatch, database, amqp_url, variable, value
):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=variable):
        create_app({"DATABASE_URL": database, "AMQP_URL": amqp_url, "TESTING": True})


def test_the_settings_read_as_written(monkeypatch):
    for variable, value in {
        "ROUTING_MAX_MOVES": "0",
        "ROUTING_AUTO_EXTENSION_DAYS": "7",
        "ROUTING_WEBHOOK_MAX_ATTEMPTS": "3",
        "ROUTING_WEBHOOK_TIMEOUT": "0.5",
    }.items():
        monkeypatch.setenv(variable, value)
    assert (usecases.max_moves(), usecases.auto_extension_days()) == (0, 7)
    assert (webhooks.max_attempts(), webhooks.timeout()) == (3, 0.5)


def test_the_allowed_networks_read_as_written_and_a_bad_one_opens_nothing(monkeypatch):
    monkeypatch.setenv("ROUTING_WEBHOOK_ALLOWED_NETWORKS", " 10.20.0.0/16 , fd00::/8 ,")
    assert [str(net) for net in egress.allowed_networks()] == ["10.20.0.0/16", "fd00::/8"]
    assert egress.literal_refusal("10.20.3.4") is None
    assert egress.literal_refusal("169.254.169.254") is not None

    monkeypatch.setenv("ROUTING_WEBHOOK_ALLOWED_NETWORKS", "10.20.0.1/16")
    # A process that started before the mistake still refuses the metadata service.
    with pytest.raises(ValueError, match="ROUTING_WEBHOOK_ALLOWED_NETWORKS"):
        egress.literal_refusal("169.254.169.254")


@pytest.mark.parametrize("command", [["consume"], ["webhooks"], ["api", "--host", "127.0.0.1"]])
def test_a_bad_setting_stops_routings_processes_naming_it(
    database, amqp_url, tmp_path: Path, command
):
    ended = start_refused(
        "routing",
        command,
        database_url=database,
        amqp_url=amqp_url,
        var_dir=tmp_path,
        ROUTING_WEBHOOK_TIMEOUT="10s",
    )
    assert ended.returncode != 0
    assert "ROUTING_WEBHOOK_TIMEOUT" in ended.stderr, ended.stderr[-2000:]
    assert "Traceback" not in ended.stderr, ended.stderr[-2000:]
