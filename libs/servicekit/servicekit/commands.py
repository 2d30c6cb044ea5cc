"""The commands every service has: migrate, api, relay and, for consumers, consume."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Mapping

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
        logs.configure(service)

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
            from eventbus import dead_letters, names

            queue = names.dead_letter_queue(service)
            if replay:
                waiting = _queue_depth(queue)
                moved = dead_letters.replay(
                    service, limit=waiting if limit is None else min(limit, waiting)
                )
                left = _queue_depth(queue)
                line = f"{service}: replayed {moved} dead-lettered message(s); "
                line += f"{left} remain in {queue}"
                if left:
                    line += (
                        f" (list them with `nighttalk {service} dead-letters`, replay them with"
                        f" `nighttalk {service} dead-letters --replay`)"
                    )
                click.echo(line)
                return
            waiting = _queue_depth(queue)
            letters = dead_letters.inspect(service, limit=limit or 100)
            for letter in letters:
                click.echo(
                    f"{letter.event_id}\t{letter.event_type}\t{letter.subject}\t"
                    f"{letter.reason}\t{letter.original_routing_key}\tdeaths={letter.deaths}"
                )
            if waiting > len(letters):
                click.echo(
                    f"{service}: listed {len(letters)} of {waiting} dead-lettered message(s) "
                    f"in {queue}; list more with --limit {min(waiting, 100_000)}",
                    err=True,
                )

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
