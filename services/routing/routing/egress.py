"""Where a partner's webhook may point: the public internet, and the networks an operator allows.

A partner chooses its webhook's address, and since it sees how its deliveries fail (the
status, or the connection's error), an address inside the services' own network would make
routing a probe of that network for the partner: which hosts and ports answer, and how.
So an address that is not public (loopback, private, link-local — the cloud's metadata
service among them —, shared or reserved) is refused unless it lies in a network listed in
``ROUTING_WEBHOOK_ALLOWED_NETWORKS`` (comma-separated CIDRs, e.g. the government
intranet's range where the partners' systems live). The check is made when a webhook is
registered with an IP address, and before each attempt on the addresses its name resolves
to; a deployment's egress rule remains the stronger fence (a name may resolve differently
between our check and the connection).
"""

from __future__ import annotations

import ipaddress
import os
import socket

from urllib3.util import parse_url

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Return the non-public networks webhooks may point into (none unless configured).

    Raise ValueError naming the variable for a value that is not a list of networks
    (``10.20.0.1/16``, host bits set, is a common slip for ``10.20.0.0/16``): read at
    each process's start, so that a mistake stops it instead of opening or closing the
    fence by a guess.
    """
    listed = os.environ.get("ROUTING_WEBHOOK_ALLOWED_NETWORKS", "")
    networks = []
    for cidr in (part.strip() for part in listed.split(",")):
        if not cidr:
            continue
        try:
            networks.append(ipaddress.ip_network(cidr))
        except ValueError as exc:
            raise ValueError(
                f"ROUTING_WEBHOOK_ALLOWED_NETWORKS: {exc} (a comma-separated list of "
                "networks, e.g. 10.20.0.0/16)"
            ) from None
    return networks


def refusal(address: Address) -> str | None:
    """Return why a webhook may not be sent to ``address``, or None if it may."""
    address = getattr(address, "ipv4_mapped", None) or address
    if address.is_global or any(address in net for net in allowed_networks()):
        return None
    return (
        f"address {address} is not on the public internet nor in ROUTING_WEBHOOK_ALLOWED_NETWORKS"
    )


def literal_refusal(host: str) -> str | None:
    """Return why a webhook may not name ``host`` if it is an IP address (or localhost)."""
    if host.lower().rstrip(".") == "localhost":
        return refusal(ipaddress.ip_address("127.0.0.1"))
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None  # a name: checked on what it resolves to, at each attempt
    return refusal(address)


def url_refusal(url: str) -> str | None:
    """Return why a webhook may not be sent to ``url`` now, by what its host resolves to.

    A name that does not resolve is not refused here: the attempt fails on it, with the
    resolver's own error, as any unreachable endpoint does.
    """
    parsed = parse_url(url)
    host = parsed.host or ""
    try:
        found = socket.getaddrinfo(host, parsed.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None
    for *_, sockaddr in found:
        reason = refusal(ipaddress.ip_address(sockaddr[0]))
        if reason is not None:
            return reason
    return None
