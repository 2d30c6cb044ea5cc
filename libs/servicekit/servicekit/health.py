"""Probes: ``/healthz`` (the process answers), ``/readyz`` (database and broker reachable)."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from eventbus.connection import connect
from servicekit import metrics

log = logging.getLogger(__name__)
blp = Blueprint("probes", __name__)


@blp.get("/healthz")
def healthz():
    """Answer while the process is alive."""
    return jsonify(status="ok")


@blp.get("/readyz")
def readyz():
    """Answer 200 when the database and the broker both answer, else 503 naming which did not."""
    runtime = current_app.extensions["runtime"]
    checks = {}
    try:
        with runtime.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["database"] = f"unavailable: {exc.__class__.__name__}"
    try:
        connect(current_app.config.get("AMQP_URL"), socket_timeout=2.0).close()
        checks["broker"] = "ok"
    except Exception as exc:  # noqa: BLE001 - pika's connector errors are not AMQPErrors
        checks["broker"] = f"unavailable: {exc.__class__.__name__}"
    ready = all(v == "ok" for v in checks.values())
    return jsonify(status="ready" if ready else "not ready", checks=checks), 200 if ready else 503


@blp.get("/metrics")
def metrics_view():
    """Expose Prometheus metrics of every worker of this service."""
    return metrics.render(
        current_app.extensions["runtime"].outbox,
        current_app.extensions.get("metrics_collectors", ()),
    )
