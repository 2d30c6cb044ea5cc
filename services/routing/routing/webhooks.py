"""Partner webhooks: partner messages POSTed, HMAC-SHA256 signed, to the URL a unit registered.

A delivery row is written in the same transaction as the partner copy it carries
(an outbox of its own), and ``nighttalk routing webhooks`` sends the due rows,
retrying with exponential backoff. The request is the CloudEvent in HTTP binary
mode (``ce-*`` headers, JSON body), readable with the official SDK, plus:

- ``X-NightTalk-Timestamp``: seconds since the epoch when it was signed;
- ``X-NightTalk-Signature``: ``sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`` with
  the webhook's secret, given when it was first registered or last rotated (refuse old
  timestamps: replay).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable

import urllib3
from environs import env
from marshmallow.validate import Range
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import bindparam, delete, func, select, update

from eventbus import names
from eventbus.consumer import backoff
from eventbus.envelope import OutgoingEvent
from routing import egress, models
from servicekit.http_clients import HttpClients

log = logging.getLogger(__name__)

SIGNATURE = "X-NightTalk-Signature"
TIMESTAMP = "X-NightTalk-Timestamp"
BATCH = 50


def max_attempts() -> int:
    """Return how many times a delivery is tried before it is marked failed."""
    return env.int("ROUTING_WEBHOOK_MAX_ATTEMPTS", 8, validate=Range(min=1))


def timeout() -> float:
    """Return the seconds an attempt waits for the partner's endpoint to connect or answer."""
    return env.float("ROUTING_WEBHOOK_TIMEOUT", 10.0, validate=Range(min=0, min_inclusive=False))


def new_secret() -> str:
    """Return a fresh signing secret for a webhook."""
    return secrets.token_urlsafe(32)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Return the signature header's value for a body signed at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


@functools.cache
def _registered_statement():
    """Return whether a unit (``unit``) registered a webhook: a key, without loading the row."""
    # Built once, and not ``session.get``: most units have no webhook, and a missing row
    # is not remembered by the identity map, so every partner copy asked again through
    # the ORM's loading.
    return select(models.Webhook.unit).where(models.Webhook.unit == bindparam("unit"))


def registered(session, unit: str) -> bool:
    """Return whether a unit registered a webhook (its partner copies are POSTed to it)."""
    return session.execute(_registered_statement(), {"unit": unit}).first() is not None


def enqueue(session, event: OutgoingEvent, now: dt.datetime) -> None:
    """Queue a partner copy for the webhook of its unit, if the unit registered one."""
    if event.exchange != names.PARTNERS_EXCHANGE:
        return
    unit = event.routing_key.split(".", 1)[0]
    if not registered(session, unit):
        return
    session.add(
        models.WebhookDelivery(
            unit=unit,
            event_id=event.event_id,
            headers=dict(event.headers),
            body=event.body,
            created_at=now,
            next_attempt_at=now,
        )
    )


def _undelivered(unit: str):
    return (
        models.WebhookDelivery.unit == unit,
        models.WebhookDelivery.delivered_at.is_(None),
    )


def _standing():
    """Select each unit's messages waiting, given up, and the oldest waiting's time."""
    failed = models.WebhookDelivery.failed_at.is_not(None)
    return (
        select(
            models.WebhookDelivery.unit,
            func.count().filter(~failed),
            func.count().filter(failed),
            func.min(models.WebhookDelivery.created_at).filter(~failed),
        )
        .where(models.WebhookDelivery.delivered_at.is_(None))
        .group_by(models.WebhookDelivery.unit)
    )


def deliveries(session, unit: str) -> dict:
    """Return what a unit's webhook has still to deliver, and what it gave up, with why."""
    standing = session.execute(_standing().where(models.WebhookDelivery.unit == unit)).first()
    _, waiting, given_up, oldest = standing or (unit, 0, 0, None)
    # The error of the oldest message still waiting (the one its endpoint is tried with),
    # else of the last one given up: what the partner has to mend.
    last_error = session.scalar(
        select(models.WebhookDelivery.last_error)
        .where(*_undelivered(unit), models.WebhookDelivery.last_error.is_not(None))
        .order_by(
            models.WebhookDelivery.failed_at.is_not(None),  # waiting ones first, the oldest
            models.WebhookDelivery.failed_at.desc(),  # else the last given up
            models.WebhookDelivery.created_at,
        )
        .limit(1)
    )
    return {
        "waiting": waiting,
        "failed": given_up,
        "oldest_waiting_since": oldest,
        "last_error": last_error,
    }


class DeliveriesCollector:
    """Report each unit's webhook messages waiting and given up, read at scrape time."""

    def __init__(self, runtime) -> None:
        self.runtime = runtime

    def collect(self):
        count = GaugeMetricFamily(
            "nighttalk_webhook_deliveries",
            "Partner webhook messages not delivered, by unit and state (waiting, failed: "
            "given up until the unit registers its webhook again).",
            labels=["unit", "state"],
        )
        oldest = GaugeMetricFamily(
            "nighttalk_webhook_oldest_waiting_age_seconds",
            "Age of a unit's oldest webhook message still waiting.",
            labels=["unit"],
        )
        try:
            with self.runtime.reading() as session:
                standing = session.execute(_standing()).all()
        except Exception:  # noqa: BLE001 - a scrape must not fail because the database did
            log.warning("webhook deliveries unavailable", exc_info=True)
            return []
        now = dt.datetime.now(dt.UTC)
        for unit, waiting, given_up, since in standing:
            count.add_metric([unit, "waiting"], waiting)
            count.add_metric([unit, "failed"], given_up)
            if since is not None:
                oldest.add_metric([unit], (now - since).total_seconds())
        return [count, oldest]


def retry_given_up(session, unit: str, now: dt.datetime) -> None:
    """Give a unit's messages given up another round of attempts, from now."""
    session.execute(
        update(models.WebhookDelivery)
        .where(*_undelivered(unit), models.WebhookDelivery.failed_at.is_not(None))
        .values(failed_at=None, attempts=0, next_attempt_at=now, last_error=None)
    )


def drop_undelivered(session, unit: str) -> None:
    """Drop what a unit's webhook has not delivered (it is being removed)."""
    session.execute(delete(models.WebhookDelivery).where(*_undelivered(unit)))


Post = Callable[[str, dict[str, str], bytes], int]


_clients = HttpClients()


def http_post(url: str, headers: dict[str, str], body: bytes) -> int:
    """POST a body once; return the HTTP status (an error's or a redirect's too, not followed).

    A redirect is not followed: the standard library's client re-sent a 301, 302 or 303 as
    a GET without the body, and the page it landed on answering 200 counted the message as
    delivered to a partner that never received it.
    """
    return _clients.post(url, body=body, headers=headers, timeout=timeout()).status


def deliver_due(session_factory, *, now: dt.datetime | None = None, post: Post = http_post) -> int:
    """Send the deliveries that are due; return how many were delivered."""
    now = now or dt.datetime.now(dt.UTC)
    delivered = 0
    with session_factory() as session:
        due = session.scalars(
            select(models.WebhookDelivery)
            .where(
                models.WebhookDelivery.delivered_at.is_(None),
                models.WebhookDelivery.failed_at.is_(None),
                models.WebhookDelivery.next_attempt_at <= now,
            )
            .order_by(models.WebhookDelivery.created_at)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        ).all()
        # A unit whose endpoint failed in this round: when it is tried next.
        failing: dict[str, dt.datetime] = {}
        for delivery in due:
            if delivery.unit in failing:
                # Not tried: its endpoint has just failed. A dead or silent endpoint costs
                # one attempt (one timeout) a round, not one per message waiting for it,
                # which held every other unit's messages behind it.
                delivery.next_attempt_at = failing[delivery.unit]
                continue
            retry_at = _attempt(session, delivery, now, post)
            if retry_at is not None:
                failing[delivery.unit] = retry_at
            elif delivery.delivered_at is not None:
                delivered += 1
        session.commit()
    return delivered


def _attempt(
    session, delivery: models.WebhookDelivery, now: dt.datetime, post: Post
) -> dt.datetime | None:
    """Try a delivery once; return when its unit's endpoint is tried next if it failed there."""
    hook = session.get(models.Webhook, delivery.unit)
    delivery.attempts += 1
    if hook is None:
        delivery.failed_at = now
        delivery.last_error = "webhook removed"
        return None
    timestamp = str(int(now.timestamp()))
    headers = {
        **delivery.headers,
        "Content-Type": "application/json",
        TIMESTAMP: timestamp,
        SIGNATURE: sign(hook.secret, timestamp, delivery.body),
    }
    error = _send(hook.url, headers, delivery.body, post)
    if error is None:
        delivery.delivered_at = now
        return None
    delivery.last_error = error
    retry_at = now + dt.timedelta(seconds=backoff(delivery.attempts, base=2.0, cap=3600.0))
    if delivery.attempts >= max_attempts():
        delivery.failed_at = now
        log.warning("webhook delivery failed for good", extra={"unit": delivery.unit})
    else:
        delivery.next_attempt_at = retry_at
    return retry_at


def _send(url: str, headers: dict[str, str], body: bytes, post: Post) -> str | None:
    """POST a message to a webhook's address; return why it was not delivered, if it was not."""
    refused = egress.url_refusal(url)
    if refused is not None:
        return refused
    try:
        status = post(url, headers, body)
    except (OSError, ValueError, urllib3.exceptions.HTTPError) as exc:
        return f"{exc.__class__.__name__}: {exc}"[:500]
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        return f"HTTP {status} (a redirect, not followed: register the address it points to)"
    return f"HTTP {status}"
