"""The local system's ports come from outside the kernel's range for outgoing connections."""

import socket

from servicekit.localsystem import _ephemeral_range, free_port


def test_ports_are_free_distinct_and_never_ephemeral():
    # An ephemeral port could be taken by any client's connection before the server binds
    # it: gunicorn failed with "Address already in use" in CI.
    low, high = _ephemeral_range()
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert not [p for p in ports if low <= p <= high]
    with socket.socket() as server:
        server.bind(("127.0.0.1", ports[0]))
