"""Structured logs: one JSON object per line, every line redacted; events logged from the bus.

An event's line carries its fields at the top level, next to ``ts``, ``level``, ``logger`` and
``msg`` (the event type)::

    {"ts":1718000000.123,"level":"error","logger":"lasso_rpc.events","msg":"config.reloaded",
     "ok":false,"source":"SIGHUP","errors":["chains.eth.chain_id: ..."],"type":"config.reloaded"}

Levels: a rejected config reload is ``error``; a breaker opening and a failed request
``warning``; a successful request and a limit hit (``limit.rejected``) ``debug``; every other
event ``info``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson

from lasso_rpc.observability.events import (
    BreakerChanged,
    ConfigReloaded,
    Event,
    LimitRejected,
    RequestFinished,
    event_to_dict,
)
from lasso_rpc.observability.redact import redact

__all__ = ["EventLogger", "configure_logging", "event_level"]

#: LogRecord attribute holding an event's fields (set through ``extra=``).
_FIELDS = "lasso_event"
_RESERVED = ("level", "logger", "msg")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] | None = getattr(record, _FIELDS, None)
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": fields["type"] if fields is not None else record.getMessage(),
        }
        if fields is not None:
            for k, v in fields.items():  # the event's own ts: when it happened
                if k not in _RESERVED:
                    out[k] = v
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


def event_level(ev: Event) -> int:
    if ev.periodic:
        return logging.DEBUG
    if isinstance(ev, LimitRejected):
        return logging.DEBUG  # a flood of them is an attack: counted in metrics, not logged
    if isinstance(ev, RequestFinished):
        return logging.DEBUG if ev.status != "error" else logging.WARNING
    if isinstance(ev, ConfigReloaded):
        return logging.INFO if ev.ok else logging.ERROR
    if isinstance(ev, BreakerChanged) and ev.to_state == "open":
        return logging.WARNING
    return logging.INFO


class _Text:
    """The event as text, made only if a plain (non-JSON) handler formats the record."""

    __slots__ = ("_fields",)

    def __init__(self, fields: dict[str, Any]) -> None:
        self._fields = fields

    def __str__(self) -> str:
        return redact(orjson.dumps(self._fields, default=str).decode())


class EventLogger:
    """Logs every event at ``event_level`` (successful requests only at debug)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger("lasso_rpc.events")

    def on_event(self, ev: Event) -> None:
        level = event_level(ev)
        if self._log.isEnabledFor(level):
            fields = event_to_dict(ev)
            self._log.log(level, "%s %s", fields["type"], _Text(fields), extra={_FIELDS: fields})
