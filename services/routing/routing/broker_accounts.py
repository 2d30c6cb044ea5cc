"""Partner broker accounts: a RabbitMQ user per unit that may only consume its own queue.

The user ``partner-<unit>`` gets, on the service's vhost, configure ``^$`` and write
``^$`` (it can declare, bind, delete and publish nothing) and read
``^partner\\.<unit>$`` (it can consume its own queue and no other). Provisioned with
``rabbitmqctl`` (the broker's own tool; the management plugin is not assumed), so
this runs on the broker's host, as a user allowed to run rabbitmqctl.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import urllib.parse

from eventbus import names

DENY = "^$"


class BrokerAccountError(Exception):
    """rabbitmqctl is missing or refused: the message says what to do."""


def username(unit: str) -> str:
    """Return the broker user name of a unit's partner account."""
    return f"partner-{unit}"


def vhost_of(amqp_url: str) -> str:
    """Return the vhost an AMQP URL names (``/`` when it names none)."""
    path = urllib.parse.urlparse(amqp_url).path
    return urllib.parse.unquote(path[1:]) if len(path) > 1 else "/"


def _ctl(*args: str, stdin: str | None = None) -> str:
    tool = shutil.which("rabbitmqctl")
    if tool is None:
        raise BrokerAccountError(
            "rabbitmqctl not found: run this on the broker's host (it provisions users with "
            "the broker's own tool), or add the user there by hand"
        )
    result = subprocess.run(  # noqa: S603 - fixed tool, arguments we built
        [tool, "-q", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        # The password never appears in arguments, so the error may be shown as it is.
        raise BrokerAccountError(f"rabbitmqctl {args[0]} failed: {result.stderr.strip()[:500]}")
    return result.stdout


def create(unit: str, amqp_url: str) -> tuple[str, str]:
    """Create (or re-key) the unit's partner account; return (user, password)."""
    user = username(unit)
    password = secrets.token_urlsafe(24)
    existing = {line.split()[0] for line in _ctl("list_users").splitlines() if line.strip()}
    if user in existing:
        _ctl("change_password", user, stdin=password + "\n")
    else:
        # No password argument: rabbitmqctl reads it from standard input, out of `ps`.
        _ctl("add_user", user, stdin=password + "\n")
    queue = names.partner_queue(unit)
    _ctl("set_permissions", "-p", vhost_of(amqp_url), user, DENY, DENY, f"^{re.escape(queue)}$")
    return user, password


def revoke(unit: str) -> bool:
    """Delete the unit's partner account; return False if it had none."""
    user = username(unit)
    existing = {line.split()[0] for line in _ctl("list_users").splitlines() if line.strip()}
    if user not in existing:
        return False
    _ctl("delete_user", user)
    return True
