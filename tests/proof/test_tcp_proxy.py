"""The proof suite's TCP proxy against a local echo server: pass, cut, stall, delay."""

from __future__ import annotations

import socket
import socketserver
import threading
import time

import pytest
from tcp_proxy import TcpProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def proxy():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with TcpProxy(*server.server_address) as running:
        yield running
    server.shutdown()
    server.server_close()


def _client(proxy: TcpProxy, timeout: float = 2.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def _echo(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def _closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_pass_forwards_both_ways(proxy):
    with _client(proxy) as sock:
        assert _echo(sock, b"hello") == b"hello"
        big = bytes(range(256)) * 1024
        assert _echo(sock, big) == big


def test_cut_closes_open_connections_and_new_ones_until_healed(proxy):
    sock = _client(proxy)
    assert _echo(sock, b"a") == b"a"
    proxy.cut()
    assert _closed_by_peer(sock)
    assert proxy.open_connections == 0
    with _client(proxy) as during:
        assert _closed_by_peer(during)
    proxy.pass_()
    with _client(proxy) as after:
        assert _echo(after, b"b") == b"b"


def test_stall_forwards_nothing_keeps_the_socket_and_delivers_on_heal(proxy):
    sock = _client(proxy, timeout=0.5)
    assert _echo(sock, b"a") == b"a"
    proxy.stall()
    sock.sendall(b"held")
    with pytest.raises(TimeoutError):
        sock.recv(16)  # nothing comes back, and nothing closes either
    assert proxy.open_connections == 1
    proxy.pass_()
    sock.settimeout(2)
    got = b""
    while len(got) < 4:
        got += sock.recv(16)
    assert got == b"held"
    sock.close()


def test_delay_adds_latency_each_way_and_keeps_order(proxy):
    with _client(proxy) as sock:
        proxy.delay(0.2)
        started = time.monotonic()
        assert _echo(sock, b"one") == b"one"
        elapsed = time.monotonic() - started
        sock.sendall(b"1")
        sock.sendall(b"2")
        sock.sendall(b"3")
        got = b""
        while len(got) < 3:
            got += sock.recv(16)
        assert got == b"123"
    # There and back: two delays at least (a lower bound, the mode's whole point).
    assert elapsed >= 0.4
