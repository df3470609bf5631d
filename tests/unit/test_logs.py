"""JSON logs: one object per line with the event's fields at top level; URLs masked; levels."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from lasso_rpc.config import load_config_text
from lasso_rpc.errors import ConfigError
from lasso_rpc.observability.events import (
    Attempt,
    BreakerChanged,
    ConfigReloaded,
    ProviderHealth,
    RequestFinished,
)
from lasso_rpc.observability.logs import EventLogger, configure_logging

KEY = "k3y-0f-the-pl4n"
URL = f"https://eth.example/v2/{KEY}"


@pytest.fixture
def log_lines() -> Iterator[Any]:
    """configure_logging as `serve` does (its stream swapped for a buffer); yields a reader."""
    root = logging.getLogger("lasso_rpc")
    saved = (root.handlers[:], root.level, root.propagate)
    configure_logging("debug")
    (handler,) = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    buf = io.StringIO()
    handler.setStream(buf)

    def read() -> list[dict[str, Any]]:
        text = buf.getvalue()
        buf.seek(0)
        buf.truncate()
        return [json.loads(line) for line in text.splitlines()]

    try:
        yield read
    finally:
        root.handlers[:], root.level, root.propagate = saved


def _failed_request() -> RequestFinished:
    return RequestFinished(
        ts=1700000000.5,
        request_id="r1",
        profile="default",
        chain="ethereum",
        method="eth_call",
        strategy="fastest",
        transport="http",
        status="error",
        error_class="provider",
        latency_ms=12.5,
        attempts=(Attempt("alpha", "provider", 12.0, error=f"connect to {URL} refused"),),
        provider=None,
    )


def test_event_fields_are_top_level_members_of_one_json_line(log_lines: Any) -> None:
    ev = BreakerChanged(
        ts=1700000000.25,
        chain="ethereum",
        provider="alpha",
        transport="http",
        from_state="closed",
        to_state="open",
        reason="5 provider faults in a row",
        profile="default",
    )
    EventLogger().on_event(ev)
    (line,) = log_lines()
    assert line == {
        "ts": 1700000000.25,
        "level": "warning",
        "logger": "lasso_rpc.events",
        "msg": "breaker.changed",
        "type": "breaker.changed",
        "chain": "ethereum",
        "provider": "alpha",
        "transport": "http",
        "from_state": "closed",
        "to_state": "open",
        "reason": "5 provider faults in a row",
        "profile": "default",
    }


def test_a_failed_request_line_keeps_urls_masked(log_lines: Any) -> None:
    EventLogger().on_event(_failed_request())
    (line,) = log_lines()
    assert line["level"] == "warning" and line["method"] == "eth_call"
    assert line["attempts"][0]["provider"] == "alpha"
    assert line["attempts"][0]["error"] == "connect to https://eth.example/*** refused"
    assert KEY not in json.dumps(line)


def test_a_failed_reload_is_an_error_line_with_its_errors(log_lines: Any) -> None:
    logger = EventLogger()
    errors = ("chains.eth.providers[0].urll: unknown key; did you mean 'url'?",)
    logger.on_event(ConfigReloaded(ts=1.0, ok=False, source="SIGHUP", errors=errors))
    logger.on_event(ConfigReloaded(ts=2.0, ok=True, source="SIGHUP"))
    failed, ok = log_lines()
    assert (failed["level"], failed["msg"], failed["ok"]) == ("error", "config.reloaded", False)
    assert failed["errors"] == list(errors)
    assert (ok["level"], ok["ok"], ok["errors"]) == ("info", True, [])


async def test_a_reload_the_router_refuses_is_logged_at_error(log_lines: Any) -> None:
    from lasso_rpc.router import Router

    good = "name: L\nslug: l\nchains: {eth: {chain_id: 1, providers: [{id: a, url: 'http://127.0.0.1:9'}]}}\n"
    router = Router(load_config_text([("l.yaml", good)], env={}))
    router.bus.subscribe(EventLogger().on_event)
    bad = good.replace("url:", "urll:")
    with pytest.raises(ConfigError):
        await router.reload(lambda: load_config_text([("l.yaml", bad)], env={}), "SIGHUP")
    lines = [ln for ln in log_lines() if ln["msg"] == "config.reloaded"]
    assert [(ln["level"], ln["ok"], ln["source"]) for ln in lines] == [("error", False, "SIGHUP")]
    assert lines[0]["errors"] == ["chains.eth.providers[0].urll: unknown key; did you mean 'url'?"]
    assert router.config.profiles["l"].chains["eth"].providers[0].url == "http://127.0.0.1:9"


def test_successful_requests_are_debug_only(log_lines: Any) -> None:
    logger = logging.getLogger("lasso_rpc.events")
    ok = msgspec.structs.replace(_failed_request(), status="ok", error_class=None, attempts=())
    logger.setLevel(logging.INFO)
    try:
        EventLogger().on_event(ok)
        EventLogger().on_event(
            ProviderHealth(ts=3.0, chain="e", provider="a", head=7, lag=0, cordoned=False)
        )
    finally:
        logger.setLevel(logging.NOTSET)
    (line,) = log_lines()
    assert (line["msg"], line["level"], line["head"]) == ("provider.health", "info", 7)


def test_plain_log_lines_are_json_too_and_masked(log_lines: Any) -> None:
    logging.getLogger("lasso_rpc.chain").warning("probe of %s failed", URL)
    try:
        raise RuntimeError(f"boom at {URL}")
    except RuntimeError:
        logging.getLogger("lasso_rpc.server").exception("unexpected error")
    first, second = log_lines()
    assert first["msg"] == "probe of https://eth.example/*** failed"
    assert (first["level"], first["logger"]) == ("warning", "lasso_rpc.chain")
    assert (
        second["msg"] == "unexpected error" and "boom at https://eth.example/***" in second["exc"]
    )
    assert KEY not in json.dumps([first, second])


def test_a_plain_text_handler_still_sees_the_event_masked(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="lasso_rpc")
    EventLogger().on_event(_failed_request())
    (record,) = caplog.records
    assert record.getMessage().startswith('request.finished {"ts":1700000000.5,"request_id":"r1"')
    assert "https://eth.example/***" in caplog.text and KEY not in caplog.text
