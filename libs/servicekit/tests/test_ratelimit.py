"""The per-caller rate limit: counted by token subject, answered 429 in the JSON error shape."""

import sys
import threading
import time

import jwt
import pytest
from flask import Flask, jsonify
from limits.storage import MemoryStorage
from werkzeug.exceptions import HTTPException

from servicekit import auth, ratelimit


@pytest.fixture
def app():
    app = Flask("limited")
    app.config["RATE_LIMIT"] = "3/minute"

    @app.get("/v1/things")
    def things():
        return jsonify([])

    @app.errorhandler(HTTPException)
    def _other_http_errors(exc):
        # As servicekit.web does: the limiter's own handler must win over this one.
        return jsonify(code=exc.code, status=exc.name, message=exc.description), exc.code

    @app.get("/v1/guarded")
    @auth.require("reception")
    def guarded():
        return jsonify(unit=auth.current_principal().unit)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    ratelimit.init_app(app)
    return app


def bearer(unit, sub=None):
    return {"Authorization": f"Bearer {auth.mint(unit, ['reception'], sub=sub)}"}


def test_a_caller_over_the_limit_gets_429_with_retry_after_in_the_json_shape(app):
    client = app.test_client()
    statuses = [client.get("/v1/things", headers=bearer("city-org")).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = client.get("/v1/things", headers=bearer("city-org"))
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    body = refused.get_json()
    assert body["code"] == 429 and body["status"] == "Too Many Requests"
    assert "rate limit exceeded: at most 3 per 1 minute" in body["message"]


@pytest.mark.parametrize("roles", [[["reception"]], [{"reception": True}], ["reception", []]])
def test_a_signed_token_with_a_container_among_its_roles_is_a_401(app, roles):
    # The limiter reads the caller's token before the view does: a 500 there once.
    claims = {"iss": "nighttalk", "sub": "x", "unit": "city-org", "roles": roles}
    token = jwt.encode({**claims, "exp": 4_000_000_000}, auth.secret(), algorithm="HS256")
    answer = app.test_client().get("/v1/guarded", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401


def test_each_subject_has_its_own_count(app):
    client = app.test_client()
    for _ in range(3):
        client.get("/v1/things", headers=bearer("city-org"))
    assert client.get("/v1/things", headers=bearer("city-org")).status_code == 429
    assert client.get("/v1/things", headers=bearer("lw-buwen")).status_code == 200


def test_forged_tokens_count_against_the_address_not_a_fresh_subject(app):
    client = app.test_client()
    forged = [
        {"Authorization": f"Bearer {auth.mint('city-org', ['admin'], sub=f's{i}', key='x' * 40)}"}
        for i in range(4)
    ]
    statuses = [client.get("/v1/things", headers=h).status_code for h in forged]
    assert statuses == [200, 200, 200, 429]
    # A valid token of the same address still has its own count.
    assert client.get("/v1/things", headers=bearer("city-org")).status_code == 200


def test_probes_are_never_limited(app):
    client = app.test_client()
    assert all(client.get("/healthz").status_code == 200 for _ in range(10))


def test_off_disables_the_limit(monkeypatch):
    monkeypatch.setenv("NIGHTTALK_RATE_LIMIT", "off")
    assert ratelimit.configured_limit() is None
    monkeypatch.setenv("NIGHTTALK_RATE_LIMIT", "20/second;600/minute")
    assert ratelimit.configured_limit() == "20/second;600/minute"
    monkeypatch.delenv("NIGHTTALK_RATE_LIMIT")
    assert ratelimit.configured_limit() == ratelimit.DEFAULT_LIMIT


def test_off_in_the_apps_setting_disables_the_limit_too():
    app = Flask("unlimited")
    app.config["RATE_LIMIT"] = "off"

    @app.get("/v1/things")
    def things():
        return jsonify([])

    assert ratelimit.init_app(app) is None
    client = app.test_client()
    assert all(client.get("/v1/things").status_code == 200 for _ in range(5))


@pytest.mark.parametrize("where", ["environment", "app setting"])
def test_a_limit_that_cannot_be_read_stops_the_start_naming_the_setting(where, monkeypatch):
    app = Flask("misconfigured")
    if where == "environment":
        monkeypatch.setenv("NIGHTTALK_RATE_LIMIT", "1200 a minute")
    else:
        app.config["RATE_LIMIT"] = "1200 a minute"
    with pytest.raises(ValueError, match="NIGHTTALK_RATE_LIMIT='1200 a minute' is not a rate"):
        ratelimit.init_app(app)


def test_the_token_is_verified_once_per_request(app, monkeypatch):
    # The limiter and require() both need the caller: one signature check serves both.
    calls = []
    real = auth.verify
    monkeypatch.setattr(auth, "verify", lambda *a, **k: calls.append(1) or real(*a, **k))
    response = app.test_client().get("/v1/guarded", headers=bearer("lw-buwen"))
    assert response.status_code == 200 and response.get_json() == {"unit": "lw-buwen"}
    assert len(calls) == 1
    assert app.test_client().get("/v1/guarded").status_code == 401


def _hits_that_raise(storage, rounds=1000, threads=4) -> int:
    """Hit the storage from several threads at once, each round on an ended expiry timer.

    Count the hits that raise. Each round first puts an ended thread in place of the
    storage's timer (as if its last expiry had just run; waiting for the real one would
    take 10 ms a round), then releases every thread at once; a tiny switch interval lets
    the threads interleave between the timer's check and its start.
    """
    raised = []

    def timer_just_ended():
        ended = threading.Thread(target=lambda: None)
        ended.start()
        ended.join()
        storage.timer = ended

    start = threading.Barrier(threads, action=timer_just_ended)

    def hit(caller):
        for _ in range(rounds):
            start.wait()
            try:
                storage.incr(f"caller-{caller}", 60)
            except RuntimeError as exc:
                raised.append(exc)

    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        workers = [threading.Thread(target=hit, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        sys.setswitchinterval(switch_interval)
    return len(raised)


def test_concurrent_hits_as_the_expiry_timer_ends_never_raise(app):
    # A raise here is a 500 for the request (seen in intake under a gthread worker).
    (limiter,) = app.extensions["limiter"]
    storage = limiter.storage
    assert isinstance(storage, ratelimit.ThreadSafeMemoryStorage)
    assert _hits_that_raise(storage) == 0


# The library's double start also trips threading's own bookkeeping in the timer threads.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_the_pinned_limits_still_races_without_our_storage():
    # The proof the test above can fail. When this fails, ``limits`` has released its
    # fix (alisaifee/limits#352): drop ThreadSafeMemoryStorage's override of the timer's
    # start, the test above and this one. About one
    # round in a hundred raises here; up to five thousand rounds make a miss unheard of.
    assert any(_hits_that_raise(MemoryStorage()) for _ in range(5))


def _sweeps_that_raise(storage, rounds=1000, keys=500) -> int:
    """Sweep expired counts while a request's thread expires the same counts itself.

    Count the sweeps that raise. Each round gives the storage ``keys`` counts expired a
    second ago; one thread runs the storage's expiry sweep (as its timer does) while
    another hits each key (``get``, which drops an expired count on its own) from the
    other end, so that the two meet; a tiny switch interval lets them interleave between
    the sweep's listing of the keys and its look at each one.
    """
    raised = []
    names = [f"caller-{n}" for n in range(keys)]

    def sweep(start):
        start.wait()
        try:
            storage._MemoryStorage__expire_events()
        except KeyError as exc:
            raised.append(exc)

    def hits(start):
        start.wait()
        for name in reversed(names):
            storage.get(name)

    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(rounds):
            expired = time.time() - 1
            for name in names:
                storage.storage[name] = 1
                storage.expirations[name] = expired
            start = threading.Barrier(2)
            threads = [threading.Thread(target=f, args=(start,)) for f in (sweep, hits)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert not storage.expirations and not storage.storage  # every count expired
    finally:
        sys.setswitchinterval(switch_interval)
    return len(raised)


def test_an_expiry_sweep_meeting_a_request_that_expires_a_count_itself_never_raises(app):
    # A raise here is a traceback in the service's log, from the timer's thread, and the
    # counts after that key left until the next sweep.
    (limiter,) = app.extensions["limiter"]
    assert isinstance(limiter.storage, ratelimit.ThreadSafeMemoryStorage)
    assert _sweeps_that_raise(limiter.storage) == 0


def test_the_library_sweep_still_races_with_a_request_expiring_a_count():
    # The proof the test above can fail: ``limits`` 5.8.0's own storage (and its newest
    # code, looked at on 2026-11-29) reads each listed key's expiry with ``[]``. A few
    # rounds in a hundred raise here; up to a thousand make a miss unheard of.
    assert any(_sweeps_that_raise(_library_storage(), rounds=200) for _ in range(5))


def _library_storage() -> MemoryStorage:
    storage = MemoryStorage()
    # Its own timer sweeps 10 ms after it is made: that sweep would race with the test's
    # requests too, and raise out of the test's sight (a thread exception pytest reports).
    storage.timer.cancel()
    return storage
