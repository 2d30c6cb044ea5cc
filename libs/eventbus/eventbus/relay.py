"""The outbox relay: publish what a crash or a broker outage left unsent.

Web workers and consumers publish their own rows right after commit; the relay
only sweeps rows older than a grace period, and wakes at once on PostgreSQL when
a publisher could not publish (``LISTEN``/``NOTIFY``). Several relays may run on
PostgreSQL (rows are claimed with ``SKIP LOCKED``); on SQLite run one.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

import psycopg
from sqlalchemy import Engine

from eventbus.outbox import Outbox, notify_channel

log = logging.getLogger(__name__)


def _listen(engine: Engine, service: str) -> psycopg.Connection | None:
    if engine.dialect.name != "postgresql":
        return None
    dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute(f"LISTEN {notify_channel(service)}")
    return conn


def run(
    box: Outbox,
    stop: threading.Event,
    *,
    interval: float = 5.0,
    grace: float = 2.0,
) -> None:
    """Sweep the outbox every ``interval`` seconds (and when woken) until ``stop`` is set."""
    listener = None
    woken = False
    log.info("relay started", extra={"service": box.service})
    while not stop.is_set():
        try:
            if listener is None or listener.closed:
                listener = _listen(box.engine, box.service)
            older_than = dt.timedelta(0) if woken else dt.timedelta(seconds=grace)
            sent = box.sweep(older_than)
            if sent:
                log.info("relay published leftovers", extra={"service": box.service, "count": sent})
        except Exception:  # noqa: BLE001 - the relay must outlive a database or broker outage
            log.exception("relay sweep failed", extra={"service": box.service})
            if listener is not None:
                listener.close()
                listener = None
        woken = False
        if listener is None:
            stop.wait(interval)
            continue
        try:
            for _ in listener.notifies(timeout=interval, stop_after=1):
                woken = True
        except psycopg.Error:
            log.exception("relay lost its LISTEN connection", extra={"service": box.service})
            listener.close()
            listener = None
            stop.wait(interval)
    if listener is not None:
        listener.close()
