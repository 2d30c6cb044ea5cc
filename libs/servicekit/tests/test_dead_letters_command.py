"""``nighttalk <svc> dead-letters``: what an operator is told, with a real broker."""

from __future__ import annotations

import logging
import uuid

import pika
import pytest
from click.testing import CliRunner
from sqlalchemy import MetaData

from eventbus import names, testing, topology
from eventbus.connection import connect
from servicekit import commands


@pytest.fixture
def restored_logging():
    """Put the root and pika loggers back as they were: the group's logs.configure() replaces
    them (with a handler writing to the command's stderr, as when run for real)."""
    root, pika_log = logging.getLogger(), logging.getLogger("pika")
    handlers, level, pika_level = root.handlers[:], root.level, pika_log.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    pika_log.setLevel(pika_level)


@pytest.fixture
def service(amqp_url, restored_logging):
    """A consuming service's group with its queue and dead-letter queue on the test vhost."""
    name = f"dl{uuid.uuid4().hex[:8]}"
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


def _unreachable(amqp_url):
    return "amqp://guest:guest@127.0.0.1:1/%2F"


def _wrong_password(amqp_url):
    return amqp_url.replace("guest:guest@", "guest:not-the-password@")


@pytest.mark.parametrize("broker", [_unreachable, _wrong_password])
@pytest.mark.parametrize("args", [(), ("--replay",)])
def test_a_broker_out_of_reach_is_one_line_and_status_1_not_a_traceback(
    service, amqp_url, broker, args
):
    _name, group = service
    result = _run(group, broker(amqp_url), "dead-letters", *args)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: broker unreachable: "), result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert isinstance(result.exception, SystemExit), result.exception
