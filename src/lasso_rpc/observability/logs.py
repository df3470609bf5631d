"""Structured (JSON) logs as an event-bus subscriber; every line is redacted."""

from __future__ import annotations

import logging
import sys

import orjson

from lasso_rpc.observability.events import Event, RequestFinished, event_to_dict
from lasso_rpc.observability.redact import redact

__all__ = ["EventLogger", "configure_logging"]


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return redact(orjson.dumps(out, default=str).decode())


def configure_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter())
    root = logging.getLogger("lasso_rpc")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


class EventLogger:
    """Logs every event except successful requests (those only at debug level)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger("lasso_rpc.events")

    def on_event(self, ev: Event) -> None:
        if isinstance(ev, RequestFinished):
            level = logging.DEBUG if ev.status != "error" else logging.WARNING
        else:
            level = logging.INFO
        if self._log.isEnabledFor(level):
            self._log.log(level, "%s", orjson.dumps(event_to_dict(ev), default=str).decode())
