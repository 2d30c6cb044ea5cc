"""The test helpers' own logic: waiting for what another thread or process does."""

from __future__ import annotations

import itertools

import pytest

from eventbus import testing


def test_eventually_returns_the_first_truthy_answer():
    answers = iter([0, [], None, "routed", "later"])
    assert testing.eventually(lambda: next(answers), interval=0) == "routed"


def test_eventually_fails_at_the_deadline_naming_what_it_waited_for():
    asked = itertools.count(1)
    with pytest.raises(
        AssertionError, match=r"not within 0\.05 s: the case routed \(last answer 0\)"
    ):
        testing.eventually(
            lambda: next(asked) and 0, "the case routed", timeout=0.05, interval=0.01
        )
    assert next(asked) > 2  # asked again until the deadline, not once
