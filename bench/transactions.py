"""Transactions each service's database committed per visit, from PostgreSQL's own counters.

CPU time on a shared two-core machine varies by a tenth between identical runs; the
number of transactions a visit costs varies only with the load (consumers apply what has
queued up together), so at a given rate it tells whether a change made a visit cheaper.
Read from ``pg_stat_database.xact_commit`` of each service's database (the benchmark's
databases are its own, so nothing else counts in them).
"""

from __future__ import annotations

import time

import psycopg
from sqlalchemy.engine import make_url

# A busy backend reports its counters at most once a second, an idle one right after:
# a reading this long after the load has them all.
SETTLE_SECONDS = 1.5


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def snapshot(database_urls: dict[str, str]) -> tuple[float, dict[str, int]]:
    """Return (monotonic time, transactions committed so far in each service's database)."""
    names = {make_url(url).database: service for service, url in database_urls.items()}
    with psycopg.connect(_dsn(next(iter(database_urls.values())))) as conn:
        rows = conn.execute(
            "SELECT datname, xact_commit FROM pg_stat_database WHERE datname = ANY(%s)",
            (list(names),),
        ).fetchall()
    return time.monotonic(), {names[name]: count for name, count in rows}


def idle_rates(database_urls: dict[str, str], seconds: float) -> dict[str, float]:
    """Return each database's transactions per second while nothing is offered (sweeps)."""
    t0, before = snapshot(database_urls)
    time.sleep(seconds)
    t1, after = snapshot(database_urls)
    return {k: max(0.0, (after[k] - before.get(k, 0)) / (t1 - t0)) for k in after}


def per_visit(before, after, idle: dict[str, float], visits: int) -> dict[str, float]:
    """Return the transactions each service's database committed per visit between two
    snapshots, less what it commits when idle."""
    (t0, count0), (t1, count1) = before, after
    if not visits:
        return {}
    return {
        name: round(
            max(0.0, count1[name] - count0.get(name, 0) - idle.get(name, 0.0) * (t1 - t0)) / visits,
            2,
        )
        for name in count1
    }


def applications(database_urls: dict[str, str]) -> dict[str, int]:
    """Return the events each service's consumer has applied so far (its inbox's rows)."""
    counts = {}
    for service, url in database_urls.items():
        with psycopg.connect(_dsn(url)) as conn:
            counts[service] = conn.execute("SELECT count(*) FROM inbox").fetchone()[0]
    return counts
