"""JSON log lines carrying the trace id and case id, with no visitor data in them."""

from __future__ import annotations

import logging
import logging.config
import os
import re

from pythonjsonlogger.json import JsonFormatter

from eventbus import tracing

# Defence in depth: code never logs visitor data, and should a message or an
# exception text carry a phone or ID number anyway, it is masked before it is written.
_PII = re.compile(r"(?<![0-9A-Za-z])(?:\d{17}[\dXx]|\d{15}|1\d{10})(?![0-9A-Za-z])")


def redact(text: str) -> str:
    """Mask anything shaped like a Chinese ID number or mobile number."""
    return _PII.sub("[redacted]", text)


class ContextFilter(logging.Filter):
    """Add the service name and trace id to every record, and mask PII-shaped text."""

    def __init__(self, service: str = "") -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.trace_id = tracing.current_trace_id()
        record.msg = redact(record.getMessage())
        record.args = ()
        return True


class RedactingJsonFormatter(JsonFormatter):
    """Format records as JSON, masking PII-shaped text in tracebacks too."""

    def formatException(self, ei) -> str:  # noqa: N802 - logging's own name
        return redact(super().formatException(ei))


LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def level() -> str:
    """Return the level ``LOG_LEVEL`` names, in any case (default INFO); raise ValueError,
    naming the variable, at a level logging does not know."""
    raw = os.environ.get("LOG_LEVEL", "")
    name = raw.strip().upper() or "INFO"
    if name == "WARN":  # logging's own alias, common in deploy files
        name = "WARNING"
    if name not in LEVELS:
        raise ValueError(f"LOG_LEVEL must be one of {', '.join(LEVELS)} (any case), not {raw!r}")
    return name


def configure(service: str) -> None:
    """Send JSON lines to stderr at ``LOG_LEVEL`` (default INFO); ValueError at a bad level."""
    chosen = level()  # before anything is changed: a bad value leaves the logging as it was
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": {"context": {"()": ContextFilter, "service": service}},
            "formatters": {
                "json": {
                    "()": RedactingJsonFormatter,
                    "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
                    "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
                }
            },
            "handlers": {
                "stderr": {
                    "class": "logging.StreamHandler",
                    "formatter": "json",
                    "filters": ["context"],
                }
            },
            "root": {"level": chosen, "handlers": ["stderr"]},
            # pika's warning about a returned message quotes the start of its body;
            # the outbox logs the failure itself without it.
            "loggers": {"pika": {"level": "ERROR"}},
        }
    )
