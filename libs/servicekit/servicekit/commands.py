"""The commands every service has: migrate, api, relay and, for consumers, consume."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping

import click
from sqlalchemy import MetaData

from eventbus import metrics
from eventbus import relay as outbox_relay
from eventbus.consumer import Consumer, Handler
from servicekit import logs, migrations
from servicekit.db import var_dir
from servicekit.runtime import Runtime, make_runtime


def stop_on_signals() -> threading.Event:
    """Return an event set by SIGTERM or SIGINT, so long-running commands end cleanly."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def service_group(
    service: str,
    *,
    package: str,
    port: int,
    metadata: Callable[[], MetaData],
    handlers: Callable[[Runtime], Mapping[str, Handler]] | None = None,
    consumer_setup: Callable[[Runtime], Callable] | None = None,
    check_settings: Callable[[], None] | None = None,
) -> click.Group:
    """Build ``nighttalk <service>`` with its standard commands.

    ``check_settings`` reads the service's own settings and raises ValueError, naming the
    variable, at one it cannot use: the API, the relay and the consumer then stop at start
    with that message instead of running and failing their work.
    """

    def settings_checked() -> None:
        if check_settings is None:
            return
        try:
            check_settings()
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc

    @click.group(name=service, help=f"Operate the {service} service.")
    def group() -> None:
        try:
            logs.configure(service)
        except ValueError as exc:  # LOG_LEVEL: every command stops here, naming it
            raise click.ClickException(str(exc)) from exc

    @group.command()
    def migrate() -> None:
        """Apply this service's database migrations up to head."""
        migrations.upgrade(service, package)
        click.echo(f"{service}: database at head")

    @group.command()
    @click.option("-m", "--message", required=True, help="What the migration changes.")
    def revision(message: str) -> None:
        """Write a new migration from the difference between the models and the database."""
        from alembic import command

        command.revision(migrations.config(service, package), message=message, autogenerate=True)

    @group.command()
    @click.option(
        "--port", "port_option", type=int, default=None, help=f"Port (env PORT, default {port})."
    )
    @click.option("--host", default="0.0.0.0", show_default=True)
    def api(port_option: int | None, host: str) -> None:
        """Serve the HTTP API with gunicorn (workers: WEB_CONCURRENCY)."""
        settings_checked()  # here, one clear message rather than each worker failing to boot
        chosen = port_option or int(os.environ.get("PORT", port))
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            folder = var_dir() / "metrics" / service
            shutil.rmtree(folder, ignore_errors=True)  # stale samples of a previous run
            folder.mkdir(parents=True, exist_ok=True)
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "python:servicekit.gunicorn_conf",
            "--bind",
            f"{host}:{chosen}",
            "--name",
            f"nighttalk-{service}",
            f"{package}.app:create_app()",
        ]
        os.execv(sys.executable, argv)

    @group.command()
    @click.option(
        "--interval",
        type=float,
        default=5.0,
        show_default=True,
        help="Seconds between sweeps when nothing wakes the relay.",
    )
    @click.option(
        "--grace",
        type=float,
        default=2.0,
        show_default=True,
        help="Leave rows younger than this to the process that wrote them "
        "(at least 1 s: a row published a moment ago waits for its sent mark).",
    )
    def relay(interval: float, grace: float) -> None:
        """Publish outbox rows that a crash or a broker outage left unsent."""
        settings_checked()
        stop = stop_on_signals()
        runtime = make_runtime(service, metadata())
        metrics.serve_if_configured(runtime.outbox)
        try:
            outbox_relay.run(runtime.outbox, stop, interval=interval, grace=grace)
        finally:
            runtime.close()

    if handlers is not None:

        @group.command(name="dead-letters")
        @click.option("--replay", is_flag=True, help="Move them back to the service's queue.")
        @click.option(
            "--limit",
            type=click.IntRange(1, 100_000),
            default=None,
            help="At most this many (default: 100 listed; every one there is replayed).",
        )
        def dead_letters_command(replay: bool, limit: int | None) -> None:
            """List this service's dead-lettered events, or replay them after a fix.

            --replay moves every message the dead-letter queue holds when it starts (not
            those dead-lettered again meanwhile: a message still failing is not sent round
            for ever), then says how many remain there.
            """
            with broker_errors():
                if replay:
                    _replay_dead_letters(service, limit)
                else:
                    _list_dead_letters(service, limit or 100)

        @group.command()
        @click.option("--prefetch", type=int, default=20, show_default=True)
        def consume(prefetch: int) -> None:
            """Consume this service's queue until stopped."""
            settings_checked()
            stop = stop_on_signals()
            # No ping before each transaction (a round trip each, a tenth of a consumer's
            # statements): an event that meets a connection the database dropped fails
            # as a disconnect, the pool is emptied, and the event is retried in place.
            runtime = make_runtime(service, metadata(), pre_ping=False)
            metrics.serve_if_configured()
            consumer = Consumer(
                service=service,
                handlers=handlers(runtime),
                unit_of_work=runtime.unit_of_work,
                prefetch=prefetch,
                setup=consumer_setup(runtime) if consumer_setup else None,
                engine=runtime.engine,
            )
            threading.Thread(target=lambda: (stop.wait(), consumer.stop()), daemon=True).start()
            try:
                consumer.run()
            finally:
                runtime.close()

    # Read by `nighttalk broker definitions`: which events this service's queue binds.
    group.nighttalk_bindings = _binding_keys(service, metadata, handlers)
    return group


def broker_error_text(exc: BaseException) -> str:
    """Return an error's class and words; pika leaves the words of some only in its arguments."""
    text = str(exc) or "; ".join(str(arg) or repr(arg) for arg in exc.args)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@contextlib.contextmanager
def broker_errors() -> Iterator[None]:
    """Turn a broker out of reach (down, a wrong user or password) into ``Error: broker
    unreachable: <reason>`` and status 1, one that refuses an operation (a queue it does not
    have) into ``Error: broker refused: <reason>``, and an AMQP_URL or AMQP_HEARTBEAT that
    cannot be read into an error naming it: not a traceback."""
    import pika.exceptions

    from eventbus.connection import parameters

    try:
        parameters()  # AMQP_URL and AMQP_HEARTBEAT, read before anything is tried
    except Exception as exc:  # noqa: BLE001 - pika's URL parsing raises ValueError, IndexError…
        if isinstance(exc, ValueError) and "AMQP_" in str(exc):
            raise click.ClickException(str(exc)) from exc
        raise click.ClickException(f"AMQP_URL cannot be read: {broker_error_text(exc)}") from exc
    # pika logs every failed step of a connection, a traceback with it, at ERROR: the one
    # line below says it all, so a one-shot command does not print them.
    pika_log = logging.getLogger("pika")
    before = pika_log.level
    pika_log.setLevel(logging.CRITICAL)
    try:
        yield
    except (pika.exceptions.AMQPConnectionError, OSError) as exc:
        raise click.ClickException(f"broker unreachable: {broker_error_text(exc)}") from exc
    except pika.exceptions.AMQPError as exc:
        raise click.ClickException(f"broker refused: {broker_error_text(exc)}") from exc
    finally:
        pika_log.setLevel(before)


def _replay_dead_letters(service: str, limit: int | None) -> None:
    from eventbus import dead_letters, names

    queue = names.dead_letter_queue(service)
    waiting = _queue_depth(queue)
    moved = dead_letters.replay(service, limit=waiting if limit is None else min(limit, waiting))
    left = _queue_depth(queue)
    line = f"{service}: replayed {moved} dead-lettered message(s); {left} remain in {queue}"
    if left:
        line += (
            f" (list them with `nighttalk {service} dead-letters`,"
            f" replay them with `nighttalk {service} dead-letters --replay`)"
        )
    click.echo(line)


def _list_dead_letters(service: str, limit: int) -> None:
    from eventbus import dead_letters, names

    queue = names.dead_letter_queue(service)
    waiting = _queue_depth(queue)
    letters = dead_letters.inspect(service, limit=limit)
    for letter in letters:
        click.echo(
            f"{letter.event_id}\t{letter.event_type}\t{letter.subject}\t"
            f"{letter.reason}\t{letter.original_routing_key}\tdeaths={letter.deaths}"
        )
    if waiting > len(letters):
        click.echo(
            f"{service}: listed {len(letters)} of {waiting} dead-lettered message(s) in {queue};"
            f" list more with --limit {min(waiting, 100_000)}",
            err=True,
        )


def _queue_depth(queue: str) -> int:
    """Return how many messages wait in a queue on AMQP_URL (ready ones, not those taken)."""
    from eventbus.connection import connect

    conn = connect()
    try:
        return conn.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        conn.close()


def _binding_keys(service, metadata, handlers):
    def keys() -> list[str]:
        if handlers is None:
            return []
        # The handlers need a runtime to close over; an in-memory one does no I/O.
        runtime = make_runtime(service, metadata(), "sqlite://", "amqp://localhost:1/%2F")
        try:
            return sorted(handlers(runtime))
        finally:
            runtime.close()

    return keys
