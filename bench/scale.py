"""``make bench-scale``: supervision, intake and routing with 1,000,000 cases in their stores.

For each of the three services a fresh PostgreSQL database is migrated to head with the
service's own Alembic history, then bulk-loaded in SQL (``INSERT ... SELECT`` over
``generate_series``) with a year of reception: 1,000,000 issues from 800,000 batches over
the 448 units of the shipped directory, skewed towards the busy units, 40 % on the twelve
night-talk evenings (the 15th, 16:00–23:00 on the city's calendar) and the rest spread
through the year. Every case is still open — 98 % routed with a running clock, 2 % not yet
routed — so the ladder sweep looks at 1,000,000 open cases. The clocks are as a scheduler
that last swept at ``LAST_SWEEP`` (a night-talk evening, 18:00) left them: the steps due before
then fired (their ``ladder_firings`` rows exist), the later ones wait as ``clock_timers``.

Then it times, through the services' own code:

- the ladder sweep as the scheduler runs it (``supervision.cli._sweep_once``, which also
  publishes each event to a real broker vhost right after its batch commits): a scheduler
  tick 60 s after the last sweep, in the busiest hour of the month (the previous month's
  night-talk cases fall due), then a catch-up after an hour and after a day without one;
- a year's statistics (``GET /v1/stats``) grouped by unit, category, month and channel;
- the case queries people run, through the real Flask apps (test client), each
  ``--requests`` times: p50 / p99.

Writes bench/results/<date>-scale.json and .md; drops its databases and its vhost.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import random
import signal
import sys
import time
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from bench.load import percentile
from eventbus import names, testing
from eventbus.connection import connect
from servicekit import auth, migrations

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

CASES = 1_000_000
# Five issues for every four batches: most batches raise one issue, some several.
VISITS = CASES * 4 // 5
CST = dt.timezone(dt.timedelta(hours=8))
# The scheduler's last sweep before the measured ones: a night-talk evening, when last
# month's night-talk cases fall due (and those of two and four months ago escalate).
LAST_SWEEP = dt.datetime(2026, 11, 15, 18, 0, tzinfo=CST)
SWEEPS = (
    ("tick (60 s)", dt.timedelta(seconds=60)),
    ("catch-up 1 h", dt.timedelta(hours=1)),
    ("catch-up 1 day", dt.timedelta(days=1)),
)
TARGETS = {"sweep_s": 3.0, "stats_s": 1.0, "query_p99_ms": 20.0}
# The partner the end-to-end benchmark listens as; a busy township.
PARTNER = "lw-guokeng"


def dsn(url: str) -> str:
    """Return a psycopg connection string for a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# -- the data ---------------------------------------------------------------------------
#
# Every figure of a row is a function of its number, so the three stores agree (case i is
# the same case in intake, routing and supervision) without sharing a table: r(n, 'key')
# is a stable pseudo-random number in [0, 1) from PostgreSQL's hashtext.

# The tables each service's load fills.
LOADED = {
    "supervision": [
        "supervised_cases",
        "ladder_firings",
        "clock_timers",
        "timeline_entries",
        "visit_records",
    ],
    "intake": ["cases", "visits"],
    "routing": ["assignments"],
}

PREPARE = """
SET work_mem = '64MB';
SET maintenance_work_mem = '256MB';
-- calendar months of due dates on the city's calendar
SET TIME ZONE 'Asia/Shanghai';
CREATE FUNCTION pg_temp.r(n bigint, k text) RETURNS double precision LANGUAGE sql IMMUTABLE
  AS $$ SELECT (hashtext(n::text || ':' || k)::bigint + 2147483648) / 4294967296.0 $$;
"""

# The batches: unit (skewed: a few units receive most), channel, time of reception.
VISITS_SQL = """
CREATE TEMP TABLE v AS
SELECT n AS v,
  md5('visit:' || n)::uuid::text AS visit_id,
  (%(units)s::text[])[1 + floor(%(n_units)s * power(pg_temp.r(n, 'unit'), 2))::int] AS unit,
  CASE WHEN pg_temp.r(n, 'channel') < 0.4 THEN 'night_talk'
       ELSE (ARRAY['daily','daily','daily','roving','letter','phone','online'])
            [1 + floor(7 * pg_temp.r(n, 'daily'))::int] END AS channel,
  CASE WHEN pg_temp.r(n, 'channel') < 0.4
    -- one of the twelve night-talk evenings before the last sweep, 16:00-23:00
    THEN date_trunc('month', %(last)s::timestamptz)
         - make_interval(months => 1 + (n %% 12)::int) + interval '14 days 16 hours'
         + pg_temp.r(n, 'time') * interval '7 hours'
    ELSE %(last)s::timestamptz - pg_temp.r(n, 'time') * interval '365 days' END AS received_at,
  1 + floor(6 * power(pg_temp.r(n, 'people'), 3))::int AS headcount
FROM generate_series(1, %(visits)s) AS n
"""

# The cases: case i belongs to batch (i - 1) * 4 / 5 + 1; category, responsible unit, term.
CASES_SQL = """
CREATE TEMP TABLE c AS
SELECT i, v.*,
  md5('case:' || i)::uuid::text AS case_id,
  v.unit || '-' || to_char(v.received_at, 'YYYYMMDD') || '-' || lpad(i::text, 7, '0')
    AS case_number,
  (%(categories)s::text[])[1 + floor(%(n_categories)s * power(pg_temp.r(i, 'cat'), 1.5))::int]
    AS category,
  (%(units)s::text[])[1 + floor(%(n_units)s * power(pg_temp.r(i, 'resp'), 2))::int]
    AS responsible_unit,
  md5('assignment:' || i)::uuid::text AS assignment_id,
  pg_temp.r(i, 'routed') >= 0.02 AS routed,
  v.received_at + interval '2 minutes' + pg_temp.r(i, 'lag') * interval '1 hour' AS routed_at,
  CASE WHEN pg_temp.r(i, 'term') < 0.9 THEN interval '1 month' ELSE interval '15 days' END
    AS term,
  CASE WHEN pg_temp.r(i, 'repeat') < 0.05 AND i > 7 THEN md5('case:' || (i - 7))::uuid::text
    END AS repeat_of,
  pg_temp.r(i, 'accepted') < 0.6 AS accepted
FROM generate_series(1, %(cases)s) AS i JOIN v ON v.v = (i - 1) * 4 / 5 + 1;
ALTER TABLE c ADD COLUMN due_at timestamptz;
UPDATE c SET due_at = routed_at + term WHERE routed;
"""

UNIT_ROWS = "SELECT code, name, level, parent, area, leader FROM unnest(%s, %s, %s, %s, %s, %s) "
UNIT_ROWS += "AS u(code, name, level, parent, area, leader)"

SUPERVISION_SQL = """
INSERT INTO units (code, name, level, parent, area, leader, active, revision, updated_at)
  SELECT code, name, level, parent, area, leader, true, 1, now() FROM ({units}) AS u;
INSERT INTO visit_records (visit_id, unit, channel, received_at, headcount, issues, follow_ups,
                           recorded_at)
  SELECT visit_id, unit, channel, received_at, headcount,
         CASE WHEN v %% 4 = 0 THEN 2 ELSE 1 END, 0, received_at FROM v;
-- Each step of each running clock, and when it comes due (ladder.fire_at, in SQL).
CREATE TEMP TABLE s AS
SELECT c.case_id, st.step, st.position, st.event, st.level,
  CASE WHEN st.percent_of_term IS NOT NULL
       THEN c.routed_at + (c.due_at - c.routed_at) * st.percent_of_term / 100
       ELSE c.due_at + make_interval(months => st.months_after_due)
                     + make_interval(days => coalesce(st.days_after_due, 0)) END AS fire_at,
  c.due_at
FROM c CROSS JOIN ladder_steps AS st WHERE c.routed AND st.active;
INSERT INTO supervised_cases (case_id, case_number, receiving_unit, responsible_unit, category,
    channel, status, received_at, registered, routed_at, due_at, assignment_id, repeat_of,
    updated_at, clock_generation, ladder_position, ladder_step, reopen_count,
    escalated_level_1_at, escalated_level_2_at)
  SELECT c.case_id, c.case_number, c.unit, CASE WHEN c.routed THEN c.responsible_unit END,
    c.category, c.channel, CASE WHEN c.routed THEN 'routed' ELSE 'open' END, c.received_at,
    true, CASE WHEN c.routed THEN c.routed_at END, c.due_at,
    CASE WHEN c.routed THEN c.assignment_id END, c.repeat_of, %(last)s,
    CASE WHEN c.routed THEN 1 ELSE 0 END, coalesce(f.position, 0), f.step, 0, f.level_1,
    f.level_2
  FROM c LEFT JOIN (
    SELECT case_id, max(position) AS position, (array_agg(step ORDER BY position DESC))[1] AS step,
      min(fire_at) FILTER (WHERE event = 'escalated' AND level = 1) AS level_1,
      min(fire_at) FILTER (WHERE event = 'escalated' AND level = 2) AS level_2
    FROM s WHERE fire_at <= %(last)s GROUP BY case_id) AS f ON f.case_id = c.case_id;
INSERT INTO ladder_firings (case_id, step, generation, event_id, due_at, fire_at, fired_at)
  SELECT case_id, step, 1, md5('firing:' || case_id || step)::uuid::text, due_at, fire_at,
         fire_at + interval '30 seconds'
  FROM s WHERE fire_at <= %(last)s;
INSERT INTO clock_timers (case_id, step, generation, fire_at)
  SELECT case_id, step, 1, fire_at FROM s WHERE fire_at > %(last)s;
INSERT INTO timeline_entries (event_id, case_id, event_type, occurred_at, recorded_at, summary)
  SELECT md5('registered:' || i)::uuid::text, case_id, 'case.registered', received_at,
         received_at, json_build_object('case_number', case_number, 'unit', unit)
  FROM c;
"""

INTAKE_SQL = """
INSERT INTO units (code, name, level, parent, active, revision)
  SELECT code, name, level, parent, true, 1 FROM ({units}) AS u;
INSERT INTO visits (id, unit, channel, received_at, registered_at, registered_by, headcount,
                    visitor_key, follow_ups)
  SELECT visit_id, unit, channel, received_at, received_at + interval '3 minutes',
         unit || ':desk', headcount, md5('visitor:' || (v %% 600000)), '[]' FROM v;
INSERT INTO cases (id, case_number, visit_id, position, unit, channel, received_at, category,
    summary, disposition, sign_over_unit, status, due_at, visitor_key, repeat_of, repeat_count,
    responsible_unit, lead_assignment_id, routed_at, updated_at)
  SELECT case_id, case_number, visit_id, row_number() OVER (PARTITION BY v ORDER BY i), unit,
    channel,
    received_at, category, '来访反映的问题 ' || i, 'route', NULL,
    CASE WHEN routed THEN 'routed' ELSE 'open' END, received_at + interval '1 month',
    md5('visitor:' || (v %% 600000)), repeat_of, 0,
    CASE WHEN routed THEN responsible_unit END, CASE WHEN routed THEN assignment_id END,
    CASE WHEN routed THEN routed_at END, coalesce(routed_at, received_at)
  FROM c;
"""

ROUTING_SQL = """
INSERT INTO assignments (id, case_id, case_number, unit, role, status, routed_at, due_at,
    category, summary, receiving_unit, channel, confidential, reason, moves, extensions,
    accepted_at)
  SELECT assignment_id, case_id, case_number, responsible_unit, 'lead',
    CASE WHEN accepted THEN 'accepted' ELSE 'assigned' END, routed_at, due_at, category,
    '来访反映的问题 ' || i, unit, channel, false, 'rule', 0, 0,
    CASE WHEN accepted THEN routed_at + interval '1 day' END
  FROM c WHERE routed;
"""


def year_parameters(units, categories: list[str]) -> dict:
    """Return the parameters of the generating SQL."""
    return {
        "units": [u.code for u in units],
        "n_units": len(units),
        "categories": categories,
        "n_categories": len(categories),
        "cases": CASES,
        "visits": VISITS,
        "last": LAST_SWEEP,
    }


def generate(url: str, params: dict) -> psycopg.Connection:
    """Generate the year's batches (v) and cases (c) once, in temporary tables of a session.

    The session stays open: each service's load copies them from it (COPY is much cheaper
    than computing them again in every database).
    """
    conn = psycopg.connect(dsn(url), autocommit=True)
    for part in (PREPARE, VISITS_SQL, CASES_SQL, "ANALYZE v;\nANALYZE c"):
        _run(conn, part, params)
    return conn


def load(service: str, url: str, sql: str, units, params: dict, year: psycopg.Connection) -> float:
    """Copy the year into a fresh migrated database, load the service's tables, ANALYZE."""
    unit_rows = UNIT_ROWS.replace("%s", "{}").format(
        *(
            _array([getattr(u, f) for u in units])
            for f in ("code", "name", "level", "parent", "area", "leader")
        )
    )
    started = time.perf_counter()
    with psycopg.connect(dsn(url)) as conn:
        # The same temporary tables, empty, then filled from the generating session.
        empty = {**params, "cases": 0, "visits": 0}
        for part in (PREPARE, VISITS_SQL, CASES_SQL):
            _run(conn, part, empty)
        for table in ("v", "c"):
            with (
                year.cursor().copy(f"COPY {table} TO STDOUT (FORMAT BINARY)") as out,
                conn.cursor().copy(f"COPY {table} FROM STDIN (FORMAT BINARY)") as into,
            ):
                for chunk in out:
                    into.write(chunk)
        _run(conn, "ANALYZE v;\nANALYZE c", params)
        # Indexes built once after the rows are in (a sorted build), not row by row; the
        # constraints' own indexes stay. The schema ends as the migrations made it.
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
            " AND tablename = ANY(%s) AND indexname NOT IN (SELECT conname FROM pg_constraint)",
            (LOADED[service],),
        ).fetchall()
        for name, _definition in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        _run(conn, sql.format(units=unit_rows), params)
        for _name, definition in indexes:
            _run(conn, definition, params)
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


def _run(conn: psycopg.Connection, script: str, params: dict) -> None:
    for statement in _statements(script):
        began = time.perf_counter()
        conn.execute(statement, params)
        if "--verbose" in sys.argv:
            took = time.perf_counter() - began
            print(f"  {took:6.1f} s  {statement.splitlines()[0][:70]}", file=sys.stderr)


def _array(values: list[str | None]) -> str:
    """Return a text[] literal (unit directory values are plain text from the shipped file)."""
    items = ",".join("NULL" if v is None else '"' + v.replace('"', '\\"') + '"' for v in values)
    return "'{" + items.replace("'", "''") + "}'::text[]"


def _comment(line: str) -> bool:
    return line.strip().startswith("--")


def _statements(script: str) -> list[str]:
    """Split a script on the semicolons that end a line (none occur inside the statements)."""
    statements = []
    for part in script.split(";\n"):
        code = [
            line for line in part.splitlines() if line.strip() and not line.strip().startswith("--")
        ]
        if code:
            statements.append("\n".join(code))
    return statements


# -- measurements -----------------------------------------------------------------------


def sweeps(url: str, amqp_url: str, wanted: set[str]) -> list[dict]:
    """Run the scheduler's sweep at each instant after the last sweep; time it, count it."""
    from servicekit.runtime import make_runtime
    from supervision import cli, models

    runtime = make_runtime("supervision", models.metadata, url, amqp_url)
    # Note the time spent publishing after each commit (broker confirms), apart from the
    # sweep's own work; the call itself is the outbox's, unchanged.
    publishing = [0.0]
    publish_committed = runtime.outbox.publish_committed

    def timed_publish(event_ids):
        began = time.perf_counter()
        try:
            return publish_committed(event_ids)
        finally:
            publishing[0] += time.perf_counter() - began

    runtime.outbox.publish_committed = timed_publish
    results = []
    try:
        for label, after in SWEEPS:
            if label not in wanted:
                continue
            as_of = LAST_SWEEP + after
            publishing[0] = 0.0
            started = time.perf_counter()
            report = cli._sweep_once(runtime, as_of.astimezone(dt.UTC), 500, 15.0)
            seconds = time.perf_counter() - started
            with psycopg.connect(dsn(url)) as conn:
                outbox, unsent = conn.execute(
                    "SELECT count(*), count(*) FILTER (WHERE sent_at IS NULL) FROM outbox"
                ).fetchone()
            fired = report["fired"]
            results.append(
                {
                    "sweep": label,
                    "as_of": as_of.isoformat(),
                    "seconds": seconds,
                    "publishing_s": publishing[0],
                    "fired": fired,
                    "total": report["total"],
                    "escalated": fired.get("unit-leader", 0) + fired.get("city-leader", 0),
                    "outbox_rows": outbox,
                    "outbox_unsent": unsent,
                }
            )
            print(json.dumps(results[-1]), file=sys.stderr)
    finally:
        runtime.close()
    return results


def _app(module: str, url: str, amqp_url: str):
    import importlib

    app = importlib.import_module(f"{module}.app").create_app(
        {"DATABASE_URL": url, "AMQP_URL": amqp_url, "TESTING": True}
    )
    return app


def _header(unit: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {auth.mint(unit, list(roles))}"}


def timed(client, requests: int, make) -> dict:
    """Send ``requests`` GETs made by ``make(n)`` -> (path, headers); return p50/p99 in ms."""
    times, statuses = [], {}
    for n in range(requests):
        path, headers = make(n)
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code} {response.get_data(as_text=True)}")
    return {"p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99), "n": requests}


def _timed_select_one(runtime, requests: int) -> dict:
    """Time ``SELECT 1`` in a read's session of its own: the database's round trips."""
    from sqlalchemy import text

    times = []
    for _ in range(requests):
        started = time.perf_counter()
        with runtime.reading() as session:
            session.execute(text("SELECT 1")).one()
        times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99), "n": requests}


def statistics(url: str, amqp_url: str, repeats: int) -> list[dict]:
    """Time a year's statistics by each grouping, as an admin reads them."""
    app = _app("supervision", url, amqp_url)
    client = app.test_client()
    admin = _header("city-org", "admin")
    year_end = LAST_SWEEP.date() - dt.timedelta(days=1)
    year_start = year_end - dt.timedelta(days=364)
    results = []
    for by in ("unit", "category", "month", "channel"):
        path = f"/v1/stats?from={year_start}&to={year_end}&by={by}"
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            response = client.get(path, headers=admin)
            times.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise RuntimeError(f"{path}: {response.status_code}")
        totals = response.get_json()["totals"]
        results.append(
            {
                "by": by,
                "seconds": min(times),
                "worst_s": max(times),
                "issues": totals["issues"],
                "batches": totals["batches"],
                "rows": len(response.get_json()["rows"]),
            }
        )
        print(json.dumps(results[-1]), file=sys.stderr)
    app.extensions["runtime"].close()
    return results


def queries(urls: dict[str, str], amqp_url: str, units, requests: int) -> list[dict]:
    """Time the case queries users run, each ``requests`` times, on random rows."""
    rng = random.Random(15)
    numbers = {}
    with psycopg.connect(dsn(urls["intake"])) as conn:
        sample = conn.execute(
            "SELECT case_number, id, unit FROM cases TABLESAMPLE SYSTEM (1) LIMIT %s",
            (requests,),
        ).fetchall()
        numbers["intake"] = sample
        busy = [
            row[0]
            for row in conn.execute(
                "SELECT unit FROM cases GROUP BY unit ORDER BY count(*) DESC LIMIT 20"
            )
        ]
    counties = [u.code for u in units if u.level == "county"]
    codes = [u.code for u in units]
    categories = ["wage_arrears", "land", "demolition_compensation", "policing"]
    results = []

    def record(service: str, what: str, figures: dict) -> None:
        results.append({"service": service, "query": what, **figures})
        print(json.dumps(results[-1]), file=sys.stderr)

    intake = _app("intake", urls["intake"], amqp_url)
    with intake.test_client() as client:
        # Floors in the same run: what any query here costs before its own work, so that
        # figures from a slower moment of the machine can be told apart from slower code.
        record(
            "floor",
            "GET /healthz (the Flask app and test client; no token, no database)",
            timed(client, requests, lambda n: ("/healthz", {})),
        )
        record(
            "floor",
            "SELECT 1 in a transaction of its own (the app's engine)",
            _timed_select_one(intake.extensions["runtime"], requests),
        )
        record(
            "intake",
            "case list, admin, page 1",
            timed(client, requests, lambda n: ("/v1/cases", _header("city-org", "admin"))),
        )
        record(
            "intake",
            "case list, a busy unit's desk, page 1",
            timed(
                client,
                requests,
                lambda n: ("/v1/cases", _header(busy[n % len(busy)], "reception")),
            ),
        )
        record(
            "intake",
            "case list, any unit's desk, status + category + month",
            timed(
                client,
                requests,
                lambda n: (
                    f"/v1/cases?status=routed&category={categories[n % 4]}"
                    "&from=2026-06-01T00:00:00%2B08:00&to=2026-07-01T00:00:00%2B08:00",
                    _header(rng.choice(codes), "reception"),
                ),
            ),
        )
        record(
            "intake",
            "case list, county supervisor, page 1",
            timed(
                client,
                requests,
                lambda n: ("/v1/cases", _header(counties[n % len(counties)], "supervisor")),
            ),
        )
        record(
            "intake",
            "case list, admin, page 200",
            timed(client, requests, lambda n: ("/v1/cases?page=200", _header("city-org", "admin"))),
        )
        record(
            "intake",
            "case detail by number",
            timed(
                client,
                requests,
                lambda n: (
                    f"/v1/cases/{numbers['intake'][n % len(numbers['intake'])][0]}",
                    _header(numbers["intake"][n % len(numbers["intake"])][2], "reception"),
                ),
            ),
        )
    intake.extensions["runtime"].close()

    routing = _app("routing", urls["routing"], amqp_url)
    with routing.test_client() as client:
        record(
            "routing",
            "assignment list, a busy partner, page 1",
            timed(
                client,
                requests,
                lambda n: ("/v1/assignments", _header(busy[n % len(busy)], "partner")),
            ),
        )
        record(
            "routing",
            "assignment list, any partner, status=assigned",
            timed(
                client,
                requests,
                lambda n: (
                    "/v1/assignments?status=assigned",
                    _header(rng.choice(codes), "partner"),
                ),
            ),
        )
    routing.extensions["runtime"].close()

    supervision = _app("supervision", urls["supervision"], amqp_url)
    with supervision.test_client() as client:
        record(
            "supervision",
            "board, county supervisor, page 1",
            timed(
                client,
                requests,
                lambda n: ("/v1/board", _header(counties[n % len(counties)], "supervisor")),
            ),
        )
        record(
            "supervision",
            "board, admin, page 1",
            timed(client, requests, lambda n: ("/v1/board", _header("city-org", "admin"))),
        )
        record(
            "supervision",
            "case detail by number",
            timed(
                client,
                requests,
                lambda n: (
                    f"/v1/cases/{numbers['intake'][n % len(numbers['intake'])][0]}",
                    _header(numbers["intake"][n % len(numbers["intake"])][2], "reception"),
                ),
            ),
        )
    supervision.extensions["runtime"].close()
    return results


# -- report -----------------------------------------------------------------------------


def write_report(result: dict) -> Path:
    """Write <date>-scale.json and .md; return the .md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"{result['date']}-scale"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    t = TARGETS
    lines = [
        f"# Scale {result['date']} — {CASES:,} open cases, {result['machine']['cores']} cores, "
        "PostgreSQL + RabbitMQ on the same machine",
        "",
        "Load (generate, insert, index, VACUUM ANALYZE): "
        + ", ".join(f"{k} {v:.0f} s" for k, v in result["load_s"].items())
        + ". Load average while measuring (1, 5, 15 min): "
        + f"{_loads(result['load_average_before'])} before, "
        + f"{_loads(result['load_average_after'])} after.",
        "",
        f"| ladder sweep (target ≤ {t['sweep_s']:.0f} s) | fired | escalated | seconds "
        "| of which publishing |",
        "|---|---|---|---|---|",
    ]
    for s in result.get("sweeps", []):
        lines.append(
            f"| {s['sweep']} | {s['total']} | {s['escalated']} | {s['seconds']:.2f} "
            f"| {s['publishing_s']:.2f} |"
        )
    lines += [
        "",
        f"| a year's statistics by (target ≤ {t['stats_s']:.0f} s) | issues | seconds |",
        "|---|---|---|",
    ]
    for s in result.get("stats", []):
        lines.append(f"| {s['by']} | {s['issues']} | {s['seconds']:.2f} |")
    lines += [
        "",
        f"| query (target p99 ≤ {t['query_p99_ms']:.0f} ms) | p50 ms | p99 ms |",
        "|---|---|---|",
    ]
    for q in result.get("queries", []):
        lines.append(f"| {q['service']}: {q['query']} | {q['p50_ms']:.1f} | {q['p99_ms']:.1f} |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return stem.with_suffix(".md")


def _loads(values) -> str:
    return " / ".join(f"{v:.1f}" for v in values)


def main(argv=None) -> None:
    global CASES, VISITS
    # A stopped run still drops its databases and vhost (SystemExit unwinds the stack).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200, help="requests per query")
    parser.add_argument("--stats-repeats", type=int, default=3, help="runs per grouping")
    parser.add_argument("--cases", type=int, default=CASES, help="cases to load (a trial run)")
    parser.add_argument(
        "--sweeps", default=",".join(label for label, _ in SWEEPS), help="which sweeps to run"
    )
    parser.add_argument("--parts", default="stats,queries,sweeps", help="what to measure")
    parser.add_argument("--profile", help="write a cProfile of the sweeps to this file")
    parser.add_argument("--verbose", action="store_true", help="time each loading statement")
    args = parser.parse_args(argv)
    CASES, VISITS = args.cases, args.cases * 4 // 5
    from intake.catalogue import CATEGORIES
    from routing import directory

    units = directory.load_units()
    categories = sorted(CATEGORIES)
    result = {
        "date": dt.date.today().isoformat(),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "cases": CASES,
        "visits": VISITS,
        "last_sweep": LAST_SWEEP.isoformat(),
        "targets": TARGETS,
    }
    with contextlib.ExitStack() as stack:
        amqp_url = stack.enter_context(testing.temporary_vhost("nighttalk-scale"))
        _declare_events(amqp_url)
        urls = {
            s: stack.enter_context(testing.temporary_database("postgresql", f"scale_{s}", ""))
            for s in ("supervision", "intake", "routing")
        }
        params = year_parameters(units, categories)
        started = time.perf_counter()
        year = stack.enter_context(generate(urls["supervision"], params))
        result["load_s"] = {"generate": time.perf_counter() - started}
        for service, sql in (
            ("supervision", SUPERVISION_SQL),
            ("intake", INTAKE_SQL),
            ("routing", ROUTING_SQL),
        ):
            print(f"{service}: migrate and load {CASES:,} cases...", file=sys.stderr)
            migrations.upgrade(service, service, urls[service])
            if service == "routing":
                _seed_routing(urls[service], units)  # its own seed checks the hierarchy
            result["load_s"][service] = load(service, urls[service], sql, units, params, year)
            if service == "supervision":
                _fold_board_counts(urls[service])
            print(f"{service}: {result['load_s'][service]:.0f} s", file=sys.stderr)
        year.close()
        result["sizes"] = _sizes(urls)
        # The machine is shared: say how busy it was while measuring.
        result["load_average_before"] = os.getloadavg()
        parts = set(args.parts.split(","))
        if "stats" in parts:
            result["stats"] = statistics(urls["supervision"], amqp_url, args.stats_repeats)
        if "queries" in parts:
            result["queries"] = queries(urls, amqp_url, units, args.requests)
        if "sweeps" in parts:
            # Last: the sweeps change the clocks and the board.
            wanted = set(args.sweeps.split(","))
            profile = None
            if args.profile:
                import cProfile

                profile = cProfile.Profile()
                profile.enable()
            result["sweeps"] = sweeps(urls["supervision"], amqp_url, wanted)
            if profile:
                profile.disable()
                profile.dump_stats(args.profile)
        result["load_average_after"] = os.getloadavg()
    report = write_report(result)
    print(report.read_text())


def _seed_routing(url: str, units) -> None:
    """Load routing's directory with its own seed (the units' hierarchy is checked)."""
    from sqlalchemy.orm import Session

    from routing import directory
    from servicekit.db import make_engine

    engine = make_engine(url)
    with Session(engine) as session:
        directory.seed(session, units)
        session.commit()
    engine.dispose()


def _fold_board_counts(url: str) -> None:
    """Fold the board's count changes the load's triggers wrote, as the scheduler's tick does.

    A running system folds them every tick (docs/supervision.md); left unfolded, the
    board would sum 22,286 changes by a scan at every request, a state no deployment
    with its scheduler running is in.
    """
    from sqlalchemy.orm import Session

    from servicekit.db import make_engine
    from supervision import board_counts

    engine = make_engine(url)
    with Session(engine) as session:
        board_counts.compact(session)
        session.commit()
    engine.dispose()
    with psycopg.connect(dsn(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE board_changes")
        conn.execute("VACUUM ANALYZE board_counts")


def _declare_events(amqp_url: str) -> None:
    """Declare the events exchange and one queue taking the sweep's events, as consumers do."""
    conn = connect(amqp_url)
    channel = conn.channel()
    channel.exchange_declare(names.EVENTS_EXCHANGE, exchange_type="topic", durable=True)
    channel.queue_declare("bench.scale", durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_bind("bench.scale", names.EVENTS_EXCHANGE, routing_key="case.#")
    conn.close()


def _sizes(urls: dict[str, str]) -> dict[str, dict[str, int]]:
    """Return the row counts of the loaded tables."""
    tables = {
        "supervision": ("supervised_cases", "clock_timers", "ladder_firings", "visit_records"),
        "intake": ("cases", "visits"),
        "routing": ("assignments", "units"),
    }
    sizes = {}
    for service, names_ in tables.items():
        with psycopg.connect(dsn(urls[service])) as conn:
            sizes[service] = {
                t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in names_
            }
    print(json.dumps(sizes), file=sys.stderr)
    return sizes


if __name__ == "__main__":
    main()
