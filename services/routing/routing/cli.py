"""``nighttalk routing``: migrate, api, relay, consume, and seed (the unit directory)."""

from __future__ import annotations

import time

import click
from sqlalchemy import select

from servicekit.commands import service_group


def _metadata():
    from routing.models import metadata

    return metadata


def _handlers(runtime):
    from routing.handlers import handlers

    return handlers(runtime)


def _consumer_setup(runtime):
    from routing.partners import consumer_setup

    return consumer_setup(runtime)


def _check_settings():
    from routing.settings import check_settings

    check_settings()


group = service_group(
    "routing",
    package="routing",
    port=8102,
    metadata=_metadata,
    handlers=_handlers,
    consumer_setup=_consumer_setup,
    check_settings=_check_settings,
)


def _connect_with_retry(wait: float):
    """Connect to ``AMQP_URL``, retrying with backoff for up to ``wait`` seconds."""
    import pika.exceptions

    from eventbus.connection import connect
    from eventbus.consumer import backoff

    deadline = time.monotonic() + wait
    attempt = 0
    while True:
        attempt += 1
        try:
            return connect()
        except (pika.exceptions.AMQPError, OSError) as exc:
            delay = backoff(attempt, base=1.0, cap=5.0)
            if time.monotonic() + delay > deadline:
                raise click.ClickException(f"broker unreachable: {exc.__class__.__name__}") from exc
            time.sleep(delay)


@group.command()
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="A unit directory file (default: the units named in the source, shipped with routing).",
)
@click.option(
    "--broker-wait",
    type=click.FloatRange(0, 600),
    default=60.0,
    show_default=True,
    help="Seconds to keep trying to reach the broker (AMQP_URL) before giving up.",
)
@click.option(
    "--announce-all",
    is_flag=True,
    help="Publish unit.changed for every unit, changed or not (a consumer's copy rebuilt).",
)
def seed(path: str | None, broker_wait: float, announce_all: bool) -> None:
    """Load the unit directory (an upsert) and declare the partner queues of AMQP partners.

    Each unit added or changed gets a new revision and is announced (``unit.changed``,
    through the outbox). Running it again changes nothing; edit the file and run it
    to add, change or retire (``"active": false``) units. Retiring the default unit, a
    unit a routing rule names or a unit with active units under it (retire or move them
    in the same file) is refused, as the API refuses it, and changes nothing.
    """
    from routing import admin, directory, models, rules
    from routing.partners import declare_partner_queues
    from servicekit.runtime import make_runtime

    try:
        records = directory.load_units(path)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    runtime = make_runtime("routing", models.metadata)
    try:
        with runtime.unit_of_work() as uow:
            try:
                result = directory.seed(uow.session, records, default_unit=rules.default_unit())
            except ValueError as exc:
                raise click.ClickException(str(exc)) from exc
            announced = (
                uow.session.scalars(select(models.Unit)).all() if announce_all else result.changed
            )
            for unit in announced:
                admin.announce(uow, unit)
            uow.commit()
        with runtime.sessions() as session:
            codes = directory.queue_codes(session)
    finally:
        runtime.close()
    click.echo(
        f"routing: unit directory seeded ({result.added} added, {result.updated} updated, "
        f"{result.unchanged} unchanged; {len(announced)} announced)"
    )
    conn = _connect_with_retry(broker_wait)
    try:
        queues = declare_partner_queues(conn.channel(), codes)
    finally:
        conn.close()
    click.echo(f"routing: {len(queues)} partner queues declared")


@group.command()
@click.option(
    "--interval",
    type=click.FloatRange(0.05, 60),
    default=1.0,
    show_default=True,
    help="Seconds between two looks for due deliveries.",
)
def webhooks(interval: float) -> None:
    """POST partner messages to the webhooks units registered, signed, retried with backoff."""
    from eventbus import metrics
    from routing import models
    from routing import webhooks as hooks
    from servicekit.commands import stop_on_signals
    from servicekit.runtime import make_runtime

    try:
        _check_settings()  # as the API, the relay and the consumer do
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    stop = stop_on_signals()
    runtime = make_runtime("routing", models.metadata)
    metrics.serve_if_configured()
    click.echo("routing: delivering partner webhooks")
    try:
        while not stop.is_set():
            if hooks.deliver_due(runtime.sessions) == 0:
                stop.wait(interval)
    finally:
        runtime.close()


@group.group("partner-account")
def partner_account() -> None:
    """Provision or revoke a unit's RabbitMQ account (consume partner.<unit> only)."""


def _unit_reading_its_queue(code: str) -> None:
    """Refuse a unit that is unknown, retired, or has no queue ``partner.<code>`` to read.

    The account may only consume that queue: for a unit that reads its cases from
    /v1/inbox or a webhook (with its partner token) it would open nothing, yet be a
    password to keep and revoke.
    """
    from routing import models
    from servicekit.runtime import make_runtime

    runtime = make_runtime("routing", models.metadata)
    try:
        with runtime.sessions() as session:
            unit = session.get(models.Unit, code)
            if unit is None or not unit.active:
                raise click.ClickException(f"{code!r} is not an active unit of the directory")
            if not unit.amqp:
                raise click.ClickException(
                    f"{code!r} does not read its cases by AMQP (amqp is false), so it has no "
                    f"queue partner.{code} for an account to consume; it reads /v1/inbox or "
                    "its webhook with a partner token (nighttalk token --unit "
                    f"{code} --role partner). To give it a queue, first PATCH /v1/units/{code} "
                    '{"amqp": true}'
                )
    finally:
        runtime.close()


@partner_account.command("create")
@click.argument("unit")
def partner_account_create(unit: str) -> None:
    """Create (or re-key) UNIT's broker user; print its user name and password once."""
    from eventbus.connection import amqp_url
    from routing import broker_accounts

    _unit_reading_its_queue(unit)
    url = amqp_url()
    try:
        user, password = broker_accounts.create(unit, url)
    except broker_accounts.BrokerAccountError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"user: {user}")
    click.echo(f"password: {password}")
    click.echo(f"vhost: {broker_accounts.vhost_of(url)}; may consume only partner.{unit}")


@partner_account.command("revoke")
@click.argument("unit")
def partner_account_revoke(unit: str) -> None:
    """Delete UNIT's broker user."""
    from routing import broker_accounts

    try:
        removed = broker_accounts.revoke(unit)
    except broker_accounts.BrokerAccountError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{broker_accounts.username(unit)}: {'revoked' if removed else 'had no account'}")
