"""Prometheus metrics of the event machinery: what is published, consumed, and left unsent.

``nighttalk_events_published_total{event="case.registered"}`` is also the domain count
(cases registered, routed, resolved, escalated...): every such fact is an event.
Worker processes (consumers, relays, schedulers) have no web server of their own;
with ``METRICS_PORT`` set they serve these on that port (see :func:`serve_if_configured`).
"""

from __future__ import annotations

import logging
import os

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger(__name__)

EVENTS_PUBLISHED = Counter(
    "nighttalk_events_published_total",
    "Events committed to a service's outbox, by event (routing key).",
    ["service", "event"],
)
EVENTS_CONSUMED = Counter(
    "nighttalk_events_consumed_total",
    "Events a consumer settled, by outcome (applied, duplicate, dead, retry, ignored).",
    ["service", "event", "outcome"],
)
EVENT_PROCESSING = Histogram(
    "nighttalk_event_processing_seconds",
    "Time to apply one event and commit its effect.",
    ["service", "event"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
CONSUMING = Gauge(
    "nighttalk_consumer_consuming",
    "1 while a service's consumer is subscribed to its queue, 0 while it reconnects.",
    ["service"],
    multiprocess_mode="livemax",
)
SUBSCRIPTIONS_LOST = Counter(
    "nighttalk_consumer_subscriptions_lost_total",
    "Subscriptions a consumer lost and made again, by reason (connection, channel closed "
    "by the broker, e.g. its consumer_timeout; cancelled by the broker, e.g. queue deleted; "
    "found by a look at the queue: queue not found, no consumer on the queue, no delivery "
    "from the queue).",
    ["service", "reason"],
)


class OutboxCollector:
    """Report a service's unsent outbox rows and the age of the oldest, read at scrape time."""

    def __init__(self, outbox) -> None:
        self.outbox = outbox

    def collect(self):
        backlog = GaugeMetricFamily(
            "nighttalk_outbox_backlog",
            "Outbox rows not yet confirmed by the broker.",
            labels=["service"],
        )
        oldest = GaugeMetricFamily(
            "nighttalk_outbox_oldest_age_seconds",
            "Age of the oldest unsent outbox row.",
            labels=["service"],
        )
        try:
            count, age = self.outbox.backlog()
        except Exception:  # noqa: BLE001 - a scrape must not fail because the database did
            log.warning("outbox backlog unavailable", exc_info=True)
            return []
        backlog.add_metric([self.outbox.service], count)
        oldest.add_metric([self.outbox.service], age)
        return [backlog, oldest]


def serve_if_configured(outbox=None) -> None:
    """Serve the default registry on ``METRICS_PORT`` (worker processes), if it is set."""
    port = os.environ.get("METRICS_PORT")
    if outbox is not None:
        REGISTRY.register(OutboxCollector(outbox))
    if port:
        start_http_server(int(port), addr=os.environ.get("METRICS_ADDR", "0.0.0.0"))
        log.info("serving metrics", extra={"port": int(port)})
