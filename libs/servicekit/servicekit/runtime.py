"""One service's connections in one process: its database, its outbox, its publisher.

Made after a fork (in ``create_app`` or a worker command), never at import time,
so no engine or broker connection crosses a process boundary.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Engine, MetaData, Table
from sqlalchemy.orm import Session, sessionmaker

from eventbus.outbox import Outbox
from eventbus.publisher import Publisher
from eventbus.unit_of_work import UnitOfWork
from servicekit.db import database_url, make_engine


@dataclass
class Runtime:
    """The live parts a service's use cases need."""

    service: str
    engine: Engine
    sessions: sessionmaker
    outbox: Outbox
    inbox_table: Table

    def unit_of_work(self) -> UnitOfWork:
        """Return a new unit of work on this service's database."""
        return UnitOfWork(self.sessions, self.outbox, self.inbox_table)

    @contextlib.contextmanager
    def reading(self) -> Iterator[Session]:
        """Open a session for a request that only reads; end its transaction with COMMIT.

        psycopg forgets every statement it has prepared on a connection at each ROLLBACK,
        the way a session ends a transaction it did not commit; a read's COMMIT changes
        nothing and keeps them, so the queries a service answers again and again are
        planned once per connection instead of at every request. Whatever raises in the
        block still ends in ROLLBACK.
        """
        with self.sessions() as session:
            yield session
            session.commit()

    def close(self) -> None:
        """Write the outbox's pending sent marks, close this thread's broker connection and
        the engine's pool."""
        self.outbox.marks.flush()
        self.outbox.publisher.close()
        self.engine.dispose()


def make_runtime(
    service: str,
    metadata: MetaData,
    url: str | None = None,
    amqp_url: str | None = None,
    *,
    pre_ping: bool = True,
) -> Runtime:
    """Connect a service to its database and the broker (lazily: nothing opens yet)."""
    engine = make_engine(url or database_url(service), pre_ping=pre_ping)
    sessions = sessionmaker(engine, expire_on_commit=False)
    box = Outbox(engine, metadata.tables["outbox"], Publisher(amqp_url), service)
    return Runtime(service, engine, sessions, box, metadata.tables["inbox"])
