"""Carry a W3C trace context from an HTTP request or an event to the events it causes.

One case is followed across the four services by the trace id of its ``traceparent``:
intake starts it (or takes the caller's), every event caused by handling another event
keeps its trace id with a new span id.
"""

from __future__ import annotations

import contextvars
import re
import secrets

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("traceparent", default=None)


def new_traceparent(trace_id: str | None = None) -> str:
    """Return a traceparent with a new span id, in the given trace or a new one."""
    return f"00-{trace_id or secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def parse_trace_id(traceparent: str | None) -> str | None:
    """Return the trace id of a well-formed traceparent, else None."""
    if not traceparent:
        return None
    match = _TRACEPARENT.match(traceparent.strip().lower())
    if not match or match.group(1) == "0" * 32:
        return None
    return match.group(1)


def continue_trace(incoming: str | None) -> str:
    """Make the current context a child of ``incoming`` (or a new trace) and return it."""
    traceparent = new_traceparent(parse_trace_id(incoming))
    _current.set(traceparent)
    return traceparent


def current_traceparent() -> str:
    """Return the current traceparent, starting a new trace if there is none."""
    value = _current.get()
    if value is None:
        value = continue_trace(None)
    return value


def current_trace_id() -> str | None:
    """Return the current trace id, if a trace has started in this context."""
    return parse_trace_id(_current.get())


def clear() -> None:
    """Forget the current trace (at the end of a request or a message)."""
    _current.set(None)
