"""``nighttalk <svc> dead-letters``: what an operator is told, with a real broker."""

from __future__ import annotations

import uuid

import pika
import pytest
from click.testing import CliRunner
from sqlalchemy import MetaData

from eventbus import names, testing, topology
from eventbus.connection import connect
from servicekit import commands, logs


@pytest.fixture
def service(amqp_url, monkeypatch):
    """A consuming service's group with its queue and dead-letter queue on the test vhost."""
    name = f"dl{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(logs, "configure", lambda service: None)  # leave pytest's logging be
    conn = connect(amqp_url)
    try:
        topology.declare_service_queue(conn.channel(), name, [])
    finally:
        conn.close()
    group = commands.service_group(
        name, package=name, port=1, metadata=MetaData, handlers=lambda runtime: {}
    )
    yield name, group
    conn = connect(amqp_url)
    try:
        channel = conn.channel()
        channel.queue_delete(names.service_queue(name))
        channel.queue_delete(names.dead_letter_queue(name))
    finally:
        conn.close()


def _dead_letter(url: str, service: str, count: int) -> None:
    conn = connect(url)
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        for n in range(count):
            channel.basic_publish(
                "",
                names.dead_letter_queue(service),
                b"{}",
                pika.BasicProperties(
                    delivery_mode=2,
                    message_id=f"m{n}",
                    headers={"ce-id": f"m{n}", "ce-type": "nighttalk.thing.done.v1"},
                ),
                mandatory=True,
            )
    finally:
        conn.close()


def _run(group, amqp_url, *args):
    return CliRunner().invoke(group, list(args), env={"AMQP_URL": amqp_url})


def test_replay_moves_every_dead_letter_and_says_none_remain(service, amqp_url):
    name, group = service
    _dead_letter(amqp_url, name, 130)
    result = _run(group, amqp_url, "dead-letters", "--replay")
    assert result.exit_code == 0, result.output
    assert testing.queue_depth(amqp_url, names.service_queue(name)) == 130
    assert testing.queue_depth(amqp_url, names.dead_letter_queue(name)) == 0
    assert f"replayed 130 dead-lettered message(s); 0 remain in {name}.dead" in result.output


def test_a_limited_replay_says_how_many_remain_and_how_to_replay_them(service, amqp_url):
    name, group = service
    _dead_letter(amqp_url, name, 30)
    result = _run(group, amqp_url, "dead-letters", "--replay", "--limit", "20")
    assert result.exit_code == 0, result.output
    assert testing.queue_depth(amqp_url, names.dead_letter_queue(name)) == 10
    assert f"replayed 20 dead-lettered message(s); 10 remain in {name}.dead" in result.output
    assert f"nighttalk {name} dead-letters --replay" in result.output


def test_a_listing_cut_short_by_the_limit_says_how_many_it_left_out(service, amqp_url):
    name, group = service
    _dead_letter(amqp_url, name, 12)
    result = _run(group, amqp_url, "dead-letters", "--limit", "10")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 10
    assert f"listed 10 of 12 dead-lettered message(s) in {name}.dead" in result.stderr
    assert testing.queue_depth(amqp_url, names.dead_letter_queue(name)) == 12  # left there
