"""How the publisher reads the broker's confirms: a unit test of the bookkeeping alone.

The broker's real confirms are exercised by the outbox tests and the proof suite; here
the order they come in is chosen, to pin the cases a real broker only sometimes shows.
"""

from __future__ import annotations

from types import SimpleNamespace

import pika.spec

from eventbus.publisher import _Confirms


def _book(*tags: int) -> _Confirms:
    confirms = _Confirms.__new__(_Confirms)  # no channel: only the bookkeeping is tested
    confirms._pending, confirms._outcomes, confirms._returned = set(tags), {}, set()
    return confirms


def _frame(method) -> SimpleNamespace:
    return SimpleNamespace(method=method)


def test_a_multiple_ack_settles_what_an_earlier_single_one_skipped():
    # An unroutable message (tag 2) is confirmed at once; the routed ones after.
    confirms = _book(1, 2, 3)
    confirms._on_confirm(_frame(pika.spec.Basic.Ack(delivery_tag=2)))
    confirms._on_confirm(_frame(pika.spec.Basic.Ack(delivery_tag=3, multiple=True)))
    assert confirms._outcomes == {1: "ack", 2: "ack", 3: "ack"}
    assert confirms._pending == set()


def test_a_nack_is_told_apart_and_a_stale_confirm_changes_nothing():
    confirms = _book(4, 5)
    confirms._on_confirm(_frame(pika.spec.Basic.Nack(delivery_tag=4)))
    confirms._on_confirm(_frame(pika.spec.Basic.Ack(delivery_tag=4)))  # already settled
    assert confirms._outcomes == {4: "nack"}
    assert confirms._pending == {5}
