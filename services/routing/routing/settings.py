"""Routing's settings, read at the start of every process: a bad one stops it, naming it.

Each is read again where it is used (tests and operators change them between runs), with
environs, so that a bad value always names its variable.
"""

from __future__ import annotations


def check_settings() -> None:
    """Read every setting now, so that a bad one stops the process at start.

    Read at each use only, a bad one would fail every transfer, extension or webhook
    delivery (a 500, or an event retried to the dead letters) while the process looked
    healthy.
    """
    from routing import egress, usecases, webhooks
    from servicekit.localtime import local_zone

    local_zone()  # the due dates of the consumer's routings and the API's follow it
    usecases.max_moves()
    usecases.auto_extension_days()
    webhooks.max_attempts()
    webhooks.timeout()
    egress.allowed_networks()  # the API's registrations and the sender's attempts
