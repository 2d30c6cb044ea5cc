"""/readyz answers within a bounded time whatever the database does.

A probe stuck on a database that stopped answering held a gunicorn thread for good; eight
of them left the API unable to answer anything. A TCP proxy between the app and
PostgreSQL stands in for a database (or a network) that goes silent.
"""

from __future__ import annotations

import importlib.util
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from servicekit import health
from servicekit.db import service_metadata
from servicekit.web import create_service_app

_spec = importlib.util.spec_from_file_location(
    "servicekit_tests_tcp_proxy", Path(__file__).resolve().parents[3] / "tests/proof/tcp_proxy.py"
)
tcp_proxy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tcp_proxy)

# Far beyond the bound /readyz keeps (a few seconds): only a probe that hangs reaches it.
HANG = 30.0


@pytest.fixture(autouse=True)
def each_probe_checks_anew(monkeypatch):
    # A result a moment old answers further probes; these tests look at each check.
    monkeypatch.setattr(health, "READY_REUSE", 0.0)


@pytest.fixture
def proxy(make_database, db_backend):
    if db_backend == "sqlite":
        pytest.skip("SQLite is a local file: no connection to go silent")
    url = make_url(make_database("readyz"))
    with tcp_proxy.TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        proxy.url = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        yield proxy


def make_app(database_url: str, amqp_url: str):
    return create_service_app(
        "ready",
        title="ready",
        description="a test service",
        metadata=service_metadata(),
        config={"TESTING": True, "DATABASE_URL": database_url, "AMQP_URL": amqp_url},
        register=lambda app, api: None,
    )


def probe(app):
    """Return /readyz's answer; fail if there is none long after the bound."""
    answers = []
    asking = threading.Thread(
        target=lambda: answers.append(app.test_client().get("/readyz")), daemon=True
    )
    asking.start()
    asking.join(HANG)
    assert answers, f"/readyz gave no answer in {HANG:.0f} s"
    return answers[0]


def test_a_database_gone_silent_on_an_open_connection_is_503(proxy, amqp_url):
    app = make_app(proxy.url, amqp_url)
    assert probe(app).status_code == 200  # the pool holds a connection now
    proxy.stall()

    answer = probe(app)
    assert answer.status_code == 503
    checks = answer.get_json()["checks"]
    assert checks["database"].startswith("unavailable") and checks["broker"] == "ok"

    proxy.pass_()
    assert probe(app).status_code == 200


def test_a_database_gone_silent_in_the_middle_of_the_check_is_503(proxy, amqp_url, monkeypatch):
    app = make_app(proxy.url, amqp_url)
    dialect = app.extensions["runtime"].engine.dialect
    real_connect = dialect.connect

    def connect_then_go_silent(*args, **kwargs):
        connection = real_connect(*args, **kwargs)
        proxy.stall()  # connected; the query will have no answer
        return connection

    monkeypatch.setattr(dialect, "connect", connect_then_go_silent)
    answer = probe(app)
    assert answer.status_code == 503
    assert answer.get_json()["checks"]["database"].startswith("unavailable")

    monkeypatch.setattr(dialect, "connect", real_connect)
    proxy.pass_()
    assert probe(app).status_code == 200


def test_probes_a_moment_apart_share_one_check(proxy, amqp_url, monkeypatch):
    monkeypatch.setattr(health, "READY_REUSE", 60.0)
    app = make_app(proxy.url, amqp_url)
    assert probe(app).status_code == 200
    before = proxy.accepted
    assert [probe(app).status_code for _ in range(10)] == [200] * 10
    assert proxy.accepted == before  # the first check's answer, not ten new connections


def test_a_sqlite_database_busy_with_a_long_write_is_ready(make_database, db_backend, amqp_url):
    if db_backend != "sqlite":
        pytest.skip("SQLite's write lock")
    url = make_database("readyz")
    app = make_app(url, amqp_url)
    assert probe(app).status_code == 200
    writer = sqlite3.connect(make_url(url).database, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # a long write holds the write lock
        writer.execute("CREATE TABLE busy (x INTEGER)")
        # Readers go on under WAL: reading is all a readiness check needs.
        answer = probe(app)
        assert answer.status_code == 200, answer.get_json()
    finally:
        writer.execute("ROLLBACK")
        writer.close()
