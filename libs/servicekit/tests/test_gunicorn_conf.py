"""The APIs' gunicorn settings, on a real gunicorn serving a real request."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from servicekit.localsystem import free_port

APP = """
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


def test_an_api_opens_no_control_socket_another_api_would_take(tmp_path: Path):
    """Four APIs on one machine would share $HOME/.gunicorn/gunicorn.ctl (gunicorn >= 25.1):
    ``gunicornc`` would reach whichever started last. The APIs open none."""
    (tmp_path / "tiny_app.py").write_text(APP)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    env.update(HOME=str(home), PYTHONPATH=str(tmp_path), WEB_CONCURRENCY="1")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:servicekit.gunicorn_conf"]
        + ["--bind", f"127.0.0.1:{port}", "tiny_app:app"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as answer:
                    assert answer.read() == b"ok"
                break
            except OSError:
                assert server.poll() is None, "gunicorn stopped"
                assert time.monotonic() < deadline, "gunicorn never answered"
                time.sleep(0.1)
    finally:
        server.terminate()
        server.wait(30)
    assert not (home / ".gunicorn").exists()
