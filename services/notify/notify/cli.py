"""``nighttalk notify``: migrate, api, relay, consume, deliver."""

import click

from servicekit.commands import service_group, stop_on_signals


def _metadata():
    from notify.models import metadata

    return metadata


def _handlers(runtime):
    from notify.handlers import handlers

    return handlers(runtime)


def _check_settings():
    from notify.delivery import check_settings

    check_settings()


group = service_group(
    "notify",
    package="notify",
    port=8104,
    metadata=_metadata,
    handlers=_handlers,
    check_settings=_check_settings,
)


@group.command()
@click.option(
    "--interval",
    type=float,
    default=2.0,
    show_default=True,
    help="Seconds to rest when nothing is due (on PostgreSQL a new row wakes the worker).",
)
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit.")
def deliver(interval: float, once: bool) -> None:
    """Send pending notifications on their channels until stopped (env NIGHTTALK_NOTIFY_*)."""
    from eventbus import metrics
    from notify import channels
    from notify.delivery import Settings, Worker
    from servicekit.runtime import make_runtime

    try:
        _check_settings()  # as the API, the relay and the consumer do
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    stop = stop_on_signals()
    runtime = make_runtime("notify", _metadata())
    metrics.serve_if_configured()
    worker = Worker(runtime, channels.from_env(), Settings.from_env())
    try:
        if once:
            click.echo(f"notify: {worker.drain(stop=stop)} notifications handled")
        else:
            worker.run(stop, interval=interval)
    finally:
        runtime.close()
