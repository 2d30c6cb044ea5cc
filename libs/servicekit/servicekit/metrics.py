"""Prometheus metrics that stay correct under several gunicorn workers.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``nighttalk <service> api`` sets it), each
worker writes its samples to that folder and ``/metrics`` aggregates them all.
We use prometheus-client directly rather than prometheus-flask-exporter because
the design asks for the conventional names (``http_requests_total``), which that
exporter does not produce.
"""

from __future__ import annotations

import os
import time

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from eventbus.metrics import OutboxCollector

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests answered.", ["service", "method", "endpoint", "status"]
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["service", "method", "endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


def add_collector(app: Flask, collector) -> None:
    """Have the app's ``/metrics`` also read ``collector`` at scrape time (a database gauge)."""
    app.extensions.setdefault("metrics_collectors", []).append(collector)


def render(outbox=None, collectors=()) -> Response:
    """Return every worker's metrics, the outbox backlog and the collectors' gauges as text."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    body = generate_latest(registry)
    # Read from the database at scrape time, once, whatever the number of workers.
    extra = CollectorRegistry()
    if outbox is not None:
        extra.register(OutboxCollector(outbox))
    for collector in collectors:
        extra.register(collector)
    body += generate_latest(extra)
    return Response(body, mimetype=CONTENT_TYPE_LATEST)


# The methods HTTP defines (RFC 9110) and PATCH. Any other a client sends is counted as
# "other": each label value is a series of its own, kept in PROMETHEUS_MULTIPROC_DIR for the
# life of the folder, and a client free to choose the method could fill it (a full folder
# kills the worker that writes into it, with SIGBUS).
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
UNMATCHED = "unmatched"


def _labels() -> tuple[str, str]:
    """Return the request's method and endpoint labels, each one of a fixed few values."""
    method = request.method if request.method in KNOWN_METHODS else "other"
    # The rule's template, never the path: a 404 or 405 (no rule matched) is "unmatched".
    endpoint = request.url_rule.rule if request.url_rule is not None else UNMATCHED
    return method, endpoint


def init_app(app: Flask, service: str) -> None:
    """Count and time every request by its endpoint (not its URL, which carries ids).

    Every label is bounded: the method is a known one or ``other``, the endpoint a route's
    template or ``unmatched``, the status a status code the app answers.
    """

    @app.before_request
    def _start_timer():
        g._metrics_started = time.perf_counter()

    @app.after_request
    def _observe(response):
        started = g.pop("_metrics_started", None)
        method, endpoint = _labels()
        if started is not None:
            HTTP_DURATION.labels(service, method, endpoint).observe(time.perf_counter() - started)
        HTTP_REQUESTS.labels(service, method, endpoint, str(response.status_code)).inc()
        return response
