"""Connection parameters from the environment."""

from __future__ import annotations

import pytest

from eventbus.connection import heartbeat_timeout, parameters


def test_heartbeat_defaults_to_30_seconds(monkeypatch):
    monkeypatch.delenv("AMQP_HEARTBEAT", raising=False)
    assert heartbeat_timeout() == 30
    assert parameters("amqp://guest:guest@localhost:5672/%2F").heartbeat == 30


def test_heartbeat_comes_from_amqp_heartbeat(monkeypatch):
    monkeypatch.setenv("AMQP_HEARTBEAT", "2")
    assert parameters("amqp://guest:guest@localhost:5672/%2F").heartbeat == 2
    # An explicit value (a test's consumer) wins over the environment.
    assert parameters("amqp://guest:guest@localhost:5672/%2F", heartbeat=7).heartbeat == 7


@pytest.mark.parametrize("raw", ["0", "-1", "2.5", "soon"])
def test_a_bad_heartbeat_is_refused_by_name(monkeypatch, raw):
    monkeypatch.setenv("AMQP_HEARTBEAT", raw)
    with pytest.raises(ValueError, match="AMQP_HEARTBEAT"):
        heartbeat_timeout()
