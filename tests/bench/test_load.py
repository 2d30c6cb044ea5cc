"""The benchmark's load generator against a real HTTP server: it posts, keeps its
connection, survives the server closing it, and counts a failed request as status 0."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.load import JsonPoster, closed_loop_throughput, open_loop
from servicekit.localsystem import free_port


class Server:
    """An HTTP/1.1 server answering 201 with the body's ``n``; it can drop idle connections."""

    def __init__(self, idle_timeout: float | None = None) -> None:
        self.connections = 0
        self.bodies: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as gunicorn
            timeout = idle_timeout  # an idle connection is closed after it, as gunicorn's

            def setup(self):
                super().setup()
                outer.connections += 1

            def do_POST(self):  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.bodies.append({"body": body, "auth": self.headers.get("Authorization")})
                reply = json.dumps({"n": body["n"]}).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1/visits"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def test_posts_json_with_the_headers_over_one_kept_connection(server):
    poster = JsonPoster(server.url, {"Authorization": "Bearer t"})
    answers = [poster.post({"n": n}) for n in range(3)]
    assert [status for status, _ in answers] == [201, 201, 201]
    assert [json.loads(body)["n"] for _, body in answers] == [0, 1, 2]
    assert {b["auth"] for b in server.bodies} == {"Bearer t"}
    assert server.connections == 1


def test_a_connection_the_server_closed_while_idle_is_replaced_before_sending():
    server = Server(idle_timeout=0.1)
    try:
        poster = JsonPoster(server.url, {})
        assert poster.post({"n": 1})[0] == 201
        threading.Event().wait(0.5)  # the server closes the idle connection meanwhile
        assert poster.post({"n": 2})[0] == 201
        assert server.connections == 2
        assert [b["body"]["n"] for b in server.bodies] == [1, 2]
    finally:
        server.close()


def test_a_request_that_cannot_reach_the_server_is_status_0():
    assert JsonPoster(f"http://127.0.0.1:{free_port()}/v1/visits", {}).post({"n": 1}) == (0, b"")


def test_open_loop_sends_every_scheduled_request_and_times_it(server):
    run = open_loop(server.url, lambda n: {"n": n}, {}, rate=50, seconds=0.4, clients=4)
    assert len(run.shots) == 20
    assert [s.status for s in run.shots] == [201] * 20
    assert [s.body["n"] for s in run.shots] == list(range(20))
    assert all(s.done >= s.scheduled for s in run.shots)


def test_closed_loop_counts_the_answered_requests(server):
    rate = closed_loop_throughput(server.url, lambda n: {"n": n}, {}, seconds=0.5, clients=2)
    # The rate divides what was answered by the time taken, at least the half second.
    assert 0 < rate * 0.5 <= len(server.bodies)
