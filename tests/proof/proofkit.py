"""What the proof scenarios share: their size, how to start the whole system, small helpers.

A module of its own, not the directory's conftest.py: every test folder has a
``conftest`` and importing one by that name may find another's.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Column, MetaData, Table, create_engine

from eventbus import testing
from eventbus.tables import add_event_tables
from servicekit import auth
from servicekit.localsystem import SERVICES, running_system

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose.yaml"
FULL = os.environ.get("NIGHTTALK_PROOF", "short") == "full"


def size(short, full):
    """Return the short figure in the everyday suite and the full one under ``make proof``."""
    return full if FULL else short


@contextlib.contextmanager
def start_system(amqp_url, db_backend, folder: Path, *, extra_env=None):
    """Run the whole system as compose declares it, on fresh databases, logging into folder."""
    with contextlib.ExitStack() as stack:
        urls = {
            s: stack.enter_context(
                testing.temporary_database(db_backend, f"proof_{s}", str(folder))
            )
            for s in SERVICES
        }
        with running_system(
            compose=COMPOSE,
            folder=folder,
            amqp_url=amqp_url,
            database_urls=urls,
            extra_env=extra_env,
        ) as system:
            yield system


def bearer(unit: str, *roles: str) -> dict[str, str]:
    """Return the Authorization header of a valid token of a unit with these roles."""
    return {"Authorization": f"Bearer {auth.mint(unit, list(roles))}"}


def items(body):
    """Return the rows of a list answer, bare or paged."""
    return body["items"] if isinstance(body, dict) else body


@contextlib.contextmanager
def event_store(make_database, name: str, *effect_columns: Column) -> Iterator[tuple]:
    """Yield (engine, outbox, inbox, effects): a service's event tables and a table of effects.

    What a scenario of one consumer needs, on a fresh database of the run's backend.
    """
    metadata = MetaData()
    outbox_t, inbox_t = add_event_tables(metadata)
    effects = Table("effects", metadata, *effect_columns)
    engine = create_engine(make_database(name))
    metadata.create_all(engine)
    try:
        yield engine, outbox_t, inbox_t, effects
    finally:
        engine.dispose()
