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
workers lets one caller through at most that many times the limit.
"""

from __future__ import annotations

import os

from flask import Flask, jsonify, request
from flask_limiter import Limiter, RateLimitExceeded
from limits import parse_many

from servicekit import auth

DEFAULT_LIMIT = "1200/minute"
UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


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
    # The services' JSON error shape; Flask-Limiter adds Retry-After to this response.
    response = jsonify(
        code=429,
        status="Too Many Requests",
        message=f"rate limit exceeded: at most {exc.description} per caller; "
        "retry after the seconds in Retry-After",
    )
    response.status_code = 429
    return response


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
        storage_uri="memory://",
        strategy="sliding-window-counter",
        headers_enabled=True,
        retry_after="delta-seconds",
    )
    limiter.request_filter(lambda: request.path in UNLIMITED_PATHS)
    limiter.init_app(app)
    # More specific than the app's HTTPException handler, so it wins whatever the order.
    app.register_error_handler(RateLimitExceeded, _too_many)
    return limiter
