"""Rate limits: one caller's flood is answered 429 before it takes the others' capacity.

Every request under the API counts against one limit per caller (Flask-Limiter's
application limit, shared by all routes): the ``sub`` of a valid bearer token, or the
remote address when the request carries no valid token (Open311 clients, bad tokens),
so forged tokens cannot mint fresh buckets. Probes and ``/metrics`` are never limited:
an orchestrator or Prometheus must not be locked out by load.

The limit comes from ``NIGHTTALK_RATE_LIMIT`` in the notation of the ``limits`` package
(``1200/minute``, several separated by ``;``); ``off`` disables it.

Storage is each gunicorn worker's memory: the deploy has no shared store (no Redis), and
a limit that protects the workers needs no more than each worker counting its own
requests. So the limit holds per caller *per worker*: an API with ``WEB_CONCURRENCY``
workers lets one caller through at most that many times the limit. That memory is
``limits``' own storage, mended for two races of its expiry between a worker's threads
(see ``ThreadSafeMemoryStorage``).
"""

from __future__ import annotations

import math
import os
import threading

from flask import Flask, request
from flask_limiter import Limiter, RateLimitExceeded
from limits import parse_many
from limits.storage import MemoryStorage

from servicekit import auth

DEFAULT_LIMIT = "1200/minute"
UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class _Expirations(dict):
    """When each count expires; a key that is gone reads as never expiring.

    ``limits``' expiry sweep lists the keys, then reads each one's expiry. A request that
    expires a key itself in between (``MemoryStorage.get`` drops an expired count without
    a lock) made that read a ``KeyError`` in the timer's thread: a traceback in the log
    and the rest of that sweep undone. Read as infinity, the key already gone is passed
    over and the sweep goes on. Only that read uses ``[]``; ``get`` and the writes are
    the plain dict's.
    """

    def __missing__(self, key: str) -> float:
        return math.inf


class ThreadSafeMemoryStorage(MemoryStorage):
    """Keep counts in memory as ``limits`` does, mended for two races of its expiry.

    ``limits`` 5.8.0 (the newest release we can pin) restarts its expiry timer on a hit
    when the last one has ended, unguarded: two of a gthread worker's threads hitting at
    that instant can both replace the timer and both start the second one, and the later
    start raises ``RuntimeError: threads can only be started once`` -- a 500 for that
    request. Fixed upstream (alisaifee/limits#352, not yet released): drop the override
    of the timer's start when a release with it can be pinned (its test says when).

    Its sweep can also trip over a count that a request expired meanwhile (see
    ``_Expirations``); upstream's code has that race still.
    """

    STORAGE_SCHEME = ["threadsafe-memory"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options):
        self._expiry_lock = threading.Lock()
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        # Replaced before the first hit: nothing has been counted in the library's dict.
        self.expirations = _Expirations()

    # The name ``MemoryStorage.__schedule_expiry`` is mangled to, so its callers call this.
    def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802
        if self.timer.is_alive():
            return  # the common case, without taking the lock
        with self._expiry_lock:
            if not self.timer.is_alive():
                timer = threading.Timer(0.01, self._MemoryStorage__expire_events)
                # Started before it is published: no thread ever sees an unstarted timer.
                timer.start()
                self.timer = timer


def configured_limit() -> str | None:
    """Return the limit from ``NIGHTTALK_RATE_LIMIT``, or None when it is switched off."""
    return _limit_or_off(os.environ.get("NIGHTTALK_RATE_LIMIT", DEFAULT_LIMIT))


def _limit_or_off(value: str | None) -> str | None:
    """Return a limit as written, None when switched off; refuse one ``limits`` cannot read.

    Refused at start, naming the setting: Flask-Limiter would otherwise fail every
    request with a 500.
    """
    value = (value or "").strip()
    if value.lower() in ("", "off", "0"):
        return None
    try:
        parse_many(value)
    except ValueError as exc:
        raise ValueError(
            f"NIGHTTALK_RATE_LIMIT={value!r} is not a rate limit: write one like "
            "1200/minute (several separated by ;), or off"
        ) from exc
    return value


def caller_key() -> str:
    """Return whom this request counts against: the token's subject, else the address."""
    try:
        return f"sub:{auth.bearer_principal().sub}"
    except auth.InvalidToken:
        return f"addr:{request.remote_addr or 'unknown'}"


def _too_many(exc: RateLimitExceeded):
    # In the shape of the face the caller addressed (Open311's error list under /open311/,
    # else the services' JSON shape); Flask-Limiter adds Retry-After to this response.
    # Imported here: servicekit.web imports this module to set the limiter up.
    from servicekit.web import error_response

    return error_response(
        429,
        f"rate limit exceeded: at most {exc.description} per caller; "
        "retry after the seconds in Retry-After",
    )


def init_app(app: Flask) -> Limiter | None:
    """Limit every request of the app but probes and metrics, per caller.

    The limit is the app's ``RATE_LIMIT`` setting (None: off), which defaults to the
    environment's.
    """
    limit = _limit_or_off(app.config.setdefault("RATE_LIMIT", configured_limit()))
    app.config["RATE_LIMIT"] = limit
    if limit is None:
        return None
    limiter = Limiter(
        caller_key,
        application_limits=[limit],
        storage_uri="threadsafe-memory://",
        strategy="sliding-window-counter",
        headers_enabled=True,
        retry_after="delta-seconds",
    )
    limiter.request_filter(lambda: request.path in UNLIMITED_PATHS)
    limiter.init_app(app)
    # More specific than the app's HTTPException handler, so it wins whatever the order.
    app.register_error_handler(RateLimitExceeded, _too_many)
    return limiter
