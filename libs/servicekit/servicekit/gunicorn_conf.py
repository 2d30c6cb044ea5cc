"""gunicorn settings for every service API (``-c python:servicekit.gunicorn_conf``)."""

import os

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "4"))
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = None  # the app writes one JSON line per request, without query strings
# Bound what a client can make a worker hold before Flask's own body limit applies.
limit_request_line = 4094
limit_request_fields = 100
# No control socket (gunicorn >= 25.1): every API on one machine would take the same
# $HOME/.gunicorn/gunicorn.ctl, so `gunicornc` would reach whichever started last;
# operators stop and scale the APIs with signals and compose instead.
control_socket_disable = True


def child_exit(server, worker):
    """Drop a dead worker's live gauges from the shared metrics folder."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
