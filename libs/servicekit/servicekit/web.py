"""The common frame of a service's Flask app: config, API docs, errors, probes, tracing."""

from __future__ import annotations

import io
import logging
import os
import time
from collections.abc import Callable

from flask import Flask, Response, current_app, g, jsonify, request
from flask_smorest import Api
from sqlalchemy import MetaData
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from eventbus import tracing
from servicekit import health, metrics, openapi, ratelimit, text
from servicekit.runtime import make_runtime

log = logging.getLogger("servicekit.http")

MAX_BODY_BYTES = 256 * 1024

# Renders an error as one face of the API answers it: (status code, message, errors by
# location and field or None) -> the response.
ErrorRenderer = Callable[[int, str, dict | None], Response]


def create_service_app(
    service: str,
    *,
    title: str,
    description: str,
    metadata: MetaData,
    config: dict | None = None,
    register: Callable[[Flask, Api], None],
) -> Flask:
    """Build a service's app: its runtime, the API docs, probes, metrics and JSON errors."""
    app = Flask(service)
    app.config.update(
        SERVICE=service,
        API_TITLE=title,
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="https://cdn.jsdelivr.net/npm/swagger-ui-dist/",
        API_SPEC_OPTIONS={
            "info": {"description": description},
            "security": [{"bearerAuth": []}],
            "components": {
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
                }
            },
        },
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        DATABASE_URL=None,
        AMQP_URL=os.environ.get("AMQP_URL"),
        JWT_SECRET=None,
    )
    app.config.update(config or {})

    app.extensions["runtime"] = make_runtime(
        service, metadata, app.config["DATABASE_URL"], app.config["AMQP_URL"]
    )
    api = Api(app)
    openapi.init_api(api)
    app.register_blueprint(health.blp)
    metrics.init_app(app, service)
    ratelimit.init_app(app)
    _init_request_context(app)
    _init_errors(app)
    register(app, api)
    return app


def _init_request_context(app: Flask) -> None:
    @app.before_request
    def _begin():
        g._started = time.perf_counter()
        tracing.continue_trace(request.headers.get("traceparent"))
        if request.content_length is None and request.headers.get("Transfer-Encoding"):
            too_large = _buffer_streamed_body(app.config["MAX_CONTENT_LENGTH"])
            if too_large is not None:
                return too_large
        too_deep = _too_deeply_nested()
        if too_deep is not None:
            return error_response(400, too_deep)
        unstorable = _unstorable_text()
        if unstorable is not None:
            return error_response(422, f"the request's text {UNSTORABLE_TEXT}", unstorable)
        repeated = _repeated_arguments()
        if repeated is not None:
            return error_response(422, "an argument is given more than once", repeated)
        # Everything under /v1 speaks JSON; say so plainly rather than failing on fields.
        if (
            request.path.startswith("/v1/")
            and request.method in ("POST", "PUT", "PATCH")
            and (request.content_length or request.headers.get("Transfer-Encoding"))
            and not request.is_json
        ):
            return jsonify(
                code=415,
                status="Unsupported Media Type",
                message="send the body as JSON with 'Content-Type: application/json'",
            ), 415
        return None

    @app.after_request
    def _log(response):
        trace_id = tracing.current_trace_id()
        if trace_id:
            response.headers["X-Trace-Id"] = trace_id
        if request.path not in ("/healthz", "/readyz", "/metrics"):
            log.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.url_rule.rule if request.url_rule else "unmatched",
                    "status": response.status_code,
                    "ms": round(
                        (time.perf_counter() - g.get("_started", time.perf_counter())) * 1000, 2
                    ),
                },
            )
        return response

    @app.teardown_request
    def _end(_exc):
        tracing.clear()


def _repeated_arguments() -> dict | None:
    """Return the errors, by location and argument, of an argument given more than once.

    No argument of the services takes repeated values (a list is written with commas), and
    webargs would read such an argument as its first value: ``status=open&status=closed``
    would list the open ones only, silently.
    """
    places = [("query", request.args)]
    if request.mimetype == "application/x-www-form-urlencoded":
        places.append(("form", request.form))
    for location, arguments in places:
        for name, values in arguments.lists():
            if len(values) > 1:
                return {location: {name: [f"given {len(values)} times: give it once"]}}
    return None


# No body of the services nests arrays and objects more than a few levels; past this depth
# a body is refused up front. Python's parser gives up near the recursion limit (about 1,000
# levels, fewer in a deep stack) with a RecursionError, which ``get_json(silent=True)`` does
# not silence, and code walking a parsed body could meet it again.
MAX_JSON_DEPTH = 32


def _too_deeply_nested() -> str | None:
    """Return why a JSON body nested past ``MAX_JSON_DEPTH`` is refused, else None."""
    if not request.is_json:
        return None
    refusal = (
        f"the JSON body is nested too deeply: at most {MAX_JSON_DEPTH} levels of arrays and objects"
    )
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        return refusal
    stack: list[tuple[int, object]] = [(1, body)]
    while stack:
        depth, item = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                return refusal
            values = item.values() if isinstance(item, dict) else item
            stack.extend((depth + 1, value) for value in values)
    return None


UNSTORABLE_TEXT = "holds a NUL character or a lone surrogate, which no text field accepts"


def _unstorable_text() -> dict | None:
    """Return the errors, by location and field, of text in the request no field can store."""
    # A path naming no resource is each service's 404 (an id with a NUL names none).
    for name, value in request.args.items(multi=True):
        if text.has_unstorable(name) or text.has_unstorable(value):
            return {"query": {name: [UNSTORABLE_TEXT]}}
    if request.is_json:
        stack: list[tuple[tuple, object]] = [((), request.get_json(silent=True))]
        while stack:
            where, item = stack.pop()
            if isinstance(item, str) and text.has_unstorable(item):
                errors: object = [UNSTORABLE_TEXT]
                for key in reversed(where or ("_schema",)):
                    errors = {str(key): errors}
                return {"json": errors}
            if isinstance(item, dict):
                stack.extend((where + (key,), key) for key in item)
                stack.extend((where + (key,), value) for key, value in item.items())
            elif isinstance(item, list):
                stack.extend((where + (n,), value) for n, value in enumerate(item))
    return None


def _buffer_streamed_body(limit: int):
    """Read a chunked body up to the limit; answer 413 if it is longer, as for Content-Length.

    Werkzeug stops a chunked body silently at the limit, so an oversize one reached the
    views cut short and was refused as invalid JSON; the server (gunicorn) ends the stream.
    """
    body = request.environ["wsgi.input"].read(limit + 1)
    if len(body) > limit:
        response = error_response(413, f"request body too large: at most {limit} bytes")
        response.headers["Connection"] = "close"  # the rest of the body is not read
        return response
    request.environ["wsgi.input"] = io.BytesIO(body)
    request.environ["CONTENT_LENGTH"] = str(len(body))
    return None


def add_error_face(app: Flask, prefix: str, render: ErrorRenderer) -> None:
    """Have every error on paths under ``prefix`` answered by ``render``.

    A face of the API with an error shape of its own (Open311's error lists) gets it for
    every error, not only for those its views raise: the request guard's refusals, the
    router's 404 and 405, an oversize chunked body and unexpected failures are answered
    before, or outside, the face's blueprint.
    """
    app.extensions.setdefault("error_faces", []).append((prefix, render))


def error_response(code: int, message: str, errors: dict | None = None) -> Response:
    """Answer an error in the shape of the face the request addressed (by default /v1's)."""
    for prefix, render in current_app.extensions.get("error_faces", ()):
        if request.path.startswith(prefix):
            return render(code, message, errors)
    status = HTTP_STATUS_CODES.get(code, "Unknown Error")
    body = {"code": code, "status": status, "message": message}
    if errors is not None:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = code
    return response


def _init_errors(app: Flask) -> None:
    # flask-smorest renders HTTP errors as JSON already; these cover what it does not.
    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        message, errors = exc.description or exc.name, None
        data = getattr(exc, "data", None)
        if isinstance(data, dict):
            if data.get("message"):
                message = data["message"]
            if "messages" in data:
                errors = data["messages"]
            if "errors" in data:
                errors = data["errors"]
        if exc.code == 413:
            message = f"request body too large: at most {app.config['MAX_CONTENT_LENGTH']} bytes"
        response = error_response(exc.code or 500, message, errors)
        # Keep the headers the error carries: a 405 must say which methods are Allow-ed.
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return error_response(500, "an unexpected error occurred; it has been logged")
