"""``nighttalk supervision``: migrate, api, relay, consume, sweep, scheduler."""

from __future__ import annotations

import datetime as dt
import json
import os

import click

from servicekit.commands import service_group, stop_on_signals


def _metadata():
    from supervision.models import metadata

    return metadata


def _handlers(runtime):
    from supervision.handlers import handlers

    return handlers(runtime)


def _check_settings():
    from servicekit.localtime import local_zone

    local_zone()  # the ladder's months and days, and the API's calendar, follow it


def _settings_checked() -> None:
    """Stop the command at start, naming the variable, at a setting it cannot use."""
    try:
        _check_settings()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


group = service_group(
    "supervision",
    package="supervision",
    port=8103,
    metadata=_metadata,
    handlers=_handlers,
    check_settings=_check_settings,
)


class Instant(click.ParamType):
    """An ISO 8601 instant with its offset (``2027-01-15T09:00:00+08:00``)."""

    name = "instant"

    def convert(self, value, param, ctx):
        if isinstance(value, dt.datetime):
            return value
        try:
            instant = dt.datetime.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 instant", param, ctx)
        if instant.tzinfo is None:
            self.fail(f"{value!r} has no offset: say +08:00 or Z", param, ctx)
        return instant


FEEDBACK_DAYS = click.option(
    "--feedback-days",
    type=click.FloatRange(0, 3650),
    # Read here (not with click's envvar) so the configuration check finds the variable.
    default=lambda: os.environ.get("SUPERVISION_FEEDBACK_DAYS", "15"),
    show_default="15",
    help="Days a resolved case waits for the visitor's feedback before it closes as "
    "no_feedback (env SUPERVISION_FEEDBACK_DAYS).",
)


@group.command()
@click.option(
    "--as-of",
    "as_of",
    type=Instant(),
    default=None,
    help="Fire the ladder steps due at this instant (default: now).",
)
@click.option("--batch", type=click.IntRange(1, 10_000), default=500, show_default=True)
@FEEDBACK_DAYS
def sweep(as_of: dt.datetime | None, batch: int, feedback_days: float) -> None:
    """Run the ladder once: fire every step due as of an instant, close unanswered cases."""
    from servicekit.runtime import make_runtime

    _settings_checked()

    runtime = make_runtime("supervision", _metadata())
    try:
        report = _sweep_once(runtime, as_of or dt.datetime.now(dt.UTC), batch, feedback_days)
    finally:
        runtime.close()
    click.echo(json.dumps(report, sort_keys=True))


def _sweep_once(runtime, as_of: dt.datetime, batch: int, feedback_days: float) -> dict:
    """Run the ladder and the feedback window once as of an instant; return what they did.

    Then fold the board's pending count changes into its counts.
    """
    from supervision import board_counts, ladder, usecases

    result = ladder.sweep(runtime, as_of, batch=batch)
    closed = usecases.sweep_feedback(runtime, as_of, dt.timedelta(days=feedback_days), batch=batch)
    # The board's counts as of this tick, so that its reads sum a minute of changes at most.
    with runtime.sessions() as session:
        board_counts.compact(session)
        session.commit()
    return {"fired": result.fired, "total": result.total, "closed_no_feedback": closed}


@group.command()
@click.option(
    "--interval",
    type=click.FloatRange(0.1, 3600),
    default=lambda: os.environ.get("SUPERVISION_SWEEP_INTERVAL", "60"),
    show_default="60",
    help="Seconds between sweeps (env SUPERVISION_SWEEP_INTERVAL).",
)
@click.option("--batch", type=click.IntRange(1, 10_000), default=500, show_default=True)
@FEEDBACK_DAYS
def scheduler(interval: float, batch: int, feedback_days: float) -> None:
    """Run the escalation ladder continuously; replicas never fire a step twice."""
    import logging

    from eventbus import metrics
    from servicekit.runtime import make_runtime

    log = logging.getLogger("supervision.scheduler")
    # As the API, relay and consumer do: whichever process an operator starts says so.
    _settings_checked()
    stop = stop_on_signals()
    runtime = make_runtime("supervision", _metadata())
    metrics.serve_if_configured()
    log.info("scheduler started", extra={"interval": interval})
    try:
        while not stop.is_set():
            try:
                report = _sweep_once(runtime, dt.datetime.now(dt.UTC), batch, feedback_days)
                if report["total"] or report["closed_no_feedback"]:
                    log.info("sweep done", extra=report)
            except Exception:  # noqa: BLE001 - a failed sweep is retried at the next tick
                log.exception("sweep failed; retrying at the next interval")
            stop.wait(interval)
    finally:
        runtime.close()
