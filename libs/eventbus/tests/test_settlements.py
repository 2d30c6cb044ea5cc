"""How the consumer's worker hands its outcomes to the connection's thread (unit tests of
the logic: a recording stand-in for pika's connection and channel)."""

from __future__ import annotations

import pika

from eventbus.consumer import _Delivery, _Settlements


class Connection:
    def __init__(self) -> None:
        self.wakes = []

    def add_callback_threadsafe(self, callback) -> None:
        self.wakes.append(callback)


class Channel:
    is_open = True

    def __init__(self) -> None:
        self.sent = []

    def basic_ack(self, tag, multiple=False):
        self.sent.append(("ack", tag, multiple))

    def basic_nack(self, tag, requeue=True):
        self.sent.append(("nack", tag))

    def basic_reject(self, tag, requeue=True):
        self.sent.append(("reject", tag))


def deliveries(*tags: int) -> list[_Delivery]:
    return [_Delivery(tag, "thing.happened", pika.BasicProperties(), b"{}", False) for tag in tags]


def test_acks_wait_for_the_connections_next_wake_then_go_out_in_order():
    conn, channel = Connection(), Channel()
    settlements = _Settlements(conn, channel, prefetch=20)

    settlements.add(deliveries(1), ["ack"])
    settlements.add(deliveries(2, 3), ["ack", "ack"])

    assert conn.wakes == []  # nothing woken for acks that can wait
    assert channel.sent == []
    settlements.send()  # the connection's thread, on its next wake
    assert channel.sent == [("ack", 1, False), ("ack", 3, True)]
    settlements.send()
    assert len(channel.sent) == 2  # each outcome sent once


def test_a_nack_or_a_reject_wakes_the_connection_at_once():
    conn, channel = Connection(), Channel()
    settlements = _Settlements(conn, channel, prefetch=20)

    settlements.add(deliveries(1, 2, 3), ["ack", "retry", "ack"])
    assert conn.wakes == [settlements.send]
    settlements.add(deliveries(4), ["dead"])
    assert len(conn.wakes) == 2

    settlements.send()
    assert channel.sent == [("ack", 1, False), ("nack", 2), ("ack", 3, False), ("reject", 4)]


def test_acks_waiting_for_half_the_prefetch_wake_the_connection():
    """Else the broker's window could fill with messages applied and not yet acked."""
    conn, channel = Connection(), Channel()
    settlements = _Settlements(conn, channel, prefetch=10)

    settlements.add(deliveries(1, 2, 3, 4), ["ack"] * 4)
    assert conn.wakes == []
    settlements.add(deliveries(5), ["ack"])
    assert conn.wakes == [settlements.send]

    settlements.send()
    settlements.add(deliveries(6), ["ack"])  # counted afresh after a send
    assert len(conn.wakes) == 1
    assert channel.sent == [("ack", 4, True), ("ack", 5, False)]
