"""LOG_LEVEL: any case is read; a level logging does not know stops the command, naming it."""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner
from sqlalchemy import MetaData

from servicekit import commands, logs


@pytest.fixture
def restored_logging():
    """Put the root and pika loggers back as they were: configure() replaces them."""
    root, pika = logging.getLogger(), logging.getLogger("pika")
    handlers, level, pika_level = root.handlers[:], root.level, pika.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    pika.setLevel(pika_level)


@pytest.mark.parametrize("value", ["debug", "Debug", "DEBUG", " debug "])
def test_a_level_is_read_in_any_case(value, monkeypatch, restored_logging):
    monkeypatch.setenv("LOG_LEVEL", value)
    logs.configure("tests")
    assert logging.getLogger().level == logging.DEBUG


def test_unset_or_empty_is_info(monkeypatch, restored_logging):
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    logs.configure("tests")
    assert logging.getLogger().level == logging.INFO
    monkeypatch.setenv("LOG_LEVEL", "")
    logs.configure("tests")
    assert logging.getLogger().level == logging.INFO


def test_an_unknown_level_stops_every_command_at_start_naming_the_variable(restored_logging):
    ran = []
    group = commands.service_group(
        "loglevel", package="loglevel", port=1, metadata=MetaData, handlers=None
    )
    group.command(name="probe")(lambda: ran.append(True))
    result = CliRunner().invoke(group, ["probe"], env={"LOG_LEVEL": "verbose"})
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.stderr.startswith("Error: LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR")
    assert "'verbose'" in result.stderr
    assert ran == []
