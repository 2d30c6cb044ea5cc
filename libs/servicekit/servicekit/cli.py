"""The ``nighttalk`` command: ``nighttalk token`` and one command group per installed service.

Each service registers its group under the ``nighttalk.services`` entry point, so
``nighttalk routing seed`` works wherever the routing package is installed, and
only the packages of the service asked for are imported.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import click

from servicekit import auth


def _service_entry_points():
    return {ep.name: ep for ep in entry_points(group="nighttalk.services")}


class _Services(click.Group):
    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(_service_entry_points()))

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        ep = _service_entry_points().get(name)
        return ep.load() if ep else None


@click.group(cls=_Services)
def main() -> None:
    """Run and operate the Night Talk services."""


@main.command()
@click.option("--unit", required=True, help="Unit code the token acts for, e.g. city-org.")
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    type=click.Choice(sorted(auth.ROLES)),
    help="A role; repeat for several.",
)
@click.option("--sub", default=None, help="Subject (who); defaults to '<unit>:operator'.")
@click.option(
    "--ttl",
    default=3600,
    show_default=True,
    type=click.IntRange(1, 366 * 86400),
    help="Seconds until the token expires.",
)
def token(unit: str, roles: tuple[str, ...], sub: str | None, ttl: int) -> None:
    """Print a signed bearer token for a unit and roles (uses NIGHTTALK_JWT_SECRET)."""
    try:
        click.echo(auth.mint(unit, list(roles), sub=sub, ttl=ttl))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@main.group()
def broker() -> None:
    """Work with the broker's configuration."""


def _bindings(ctx) -> dict[str, list[str]]:
    """Return each consuming service's binding keys, as its consumer declares them."""
    bindings = {}
    for name in _service_entry_points():
        group = main.get_command(ctx, name)
        keys = getattr(group, "nighttalk_bindings", None)
        if keys is not None and keys():
            bindings[name] = list(keys())
    return bindings


@broker.command()
def declare() -> None:
    """Declare every service's queue and bindings on AMQP_URL, as the boot definitions do.

    For a broker without the definitions file (``make run``, the local system of the
    tests): queues must exist before the first events are published, or a consumer that
    binds later never sees them (routing's seed announces the whole unit directory).
    """
    from eventbus import topology
    from eventbus.connection import connect
    from servicekit.commands import broker_errors

    bindings = _bindings(click.get_current_context())
    with broker_errors():
        conn = connect()
        try:
            channel = conn.channel()
            for service, keys in bindings.items():
                topology.declare_service_queue(channel, service, keys)
        finally:
            conn.close()


@broker.command()
@click.option(
    "--user",
    envvar="RABBITMQ_USER",
    default="nighttalk",
    show_default=True,
    help="The services' broker user (env RABBITMQ_USER, as compose's AMQP_URL).",
)
@click.option(
    "--password",
    envvar="RABBITMQ_PASSWORD",
    default="nighttalk",
    show_default=True,
    help="Its password (env RABBITMQ_PASSWORD); only its salted hash is written.",
)
@click.option("--salt", default=None, help="Hex salt (4 bytes), for a reproducible file.")
def definitions(user: str, password: str, salt: str | None) -> None:
    """Print RabbitMQ definitions (exchanges, queues, bindings, policies, user) to load at boot.

    The user is the only one the broker has: with definitions loaded at boot RabbitMQ
    creates no default user. Generate the file with the RABBITMQ_USER and
    RABBITMQ_PASSWORD compose builds AMQP_URL from, and restart the broker.
    """
    import json

    from eventbus import definitions as broker_definitions

    bindings = _bindings(click.get_current_context())
    body = broker_definitions.build(
        bindings, user=user, password=password, salt=bytes.fromhex(salt) if salt else None
    )
    click.echo(json.dumps(body, indent=2, sort_keys=True))
