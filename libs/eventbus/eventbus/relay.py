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

from eventbus.outbox import MARKS_SETTLE, Outbox, notify_channel

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
    """Sweep the outbox every ``interval`` seconds (and when woken) until ``stop`` is set.

    A sweep takes rows older than ``grace`` seconds, or when woken (a publisher could not
    publish) older than ``MARKS_SETTLE``, and then sweeps again ``MARKS_SETTLE`` later for
    those it left: younger rows may be published already and waiting for their mark.
    """
    listener = None
    woken = follow_up = False
    grace = max(grace, MARKS_SETTLE)
    log.info("relay started", extra={"service": box.service})
    while not stop.is_set():
        try:
            if listener is None or listener.closed:
                listener = _listen(box.engine, box.service)
            older_than = dt.timedelta(seconds=MARKS_SETTLE if woken or follow_up else grace)
            sent = box.sweep(older_than)
            if sent:
                log.info("relay published leftovers", extra={"service": box.service, "count": sent})
        except Exception:  # noqa: BLE001 - the relay must outlive a database or broker outage
            log.exception("relay sweep failed", extra={"service": box.service})
            if listener is not None:
                listener.close()
                listener = None
        # After a woken sweep, once more when the rows it left are old enough.
        follow_up, wait, woken = woken, (MARKS_SETTLE if woken else interval), False
        if listener is None:
            stop.wait(wait)
            continue
        try:
            for _ in listener.notifies(timeout=wait, stop_after=1):
                woken = True
        except psycopg.Error:
            log.exception("relay lost its LISTEN connection", extra={"service": box.service})
            listener.close()
            listener = None
            stop.wait(interval)
    if listener is not None:
        listener.close()
