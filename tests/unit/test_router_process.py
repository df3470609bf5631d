"""The router launcher's pure parts: its command line and reading its readiness lines."""

from __future__ import annotations

import sys

import pytest

from lasso_rpc.battle.providers.router_process import (
    Listening,
    Readiness,
    RouterProcessError,
    serve_command,
)


def test_serve_command() -> None:
    assert serve_command("/c/r.yaml") == [
        sys.executable, "-m", "lasso_rpc", "serve", "--config", "/c/r.yaml", "--port", "0",
    ]  # fmt: skip
    pinned = serve_command("r.yaml", port=8545, workers=2, launcher=["taskset", "-c", "0", "x"])
    assert pinned == [
        "taskset", "-c", "0", "x", "serve", "--config", "r.yaml", "--port", "8545",
        "--workers", "2",
    ]  # fmt: skip


def test_readiness_waits_for_every_worker() -> None:
    r = Readiness(2, tail_lines=3)
    assert not r.feed("INFO starting\n")
    assert not r.feed("lasso-rpc listening on http://127.0.0.1:4100 (pid 11)\n")
    assert r.feed("lasso-rpc listening on http://127.0.0.1:4100 (pid 12)\n")
    assert r.feed("lasso-rpc listening on http://127.0.0.1:4100 (pid 13)\n")  # a third: ignored
    assert r.listening == [
        Listening("http://127.0.0.1:4100", 11),
        Listening("http://127.0.0.1:4100", 12),
    ]
    assert r.output.splitlines() == [
        "lasso-rpc listening on http://127.0.0.1:4100 (pid 11)",
        "lasso-rpc listening on http://127.0.0.1:4100 (pid 12)",
        "lasso-rpc listening on http://127.0.0.1:4100 (pid 13)",
    ]
    err = r.failure("exited with 1")
    assert isinstance(err, RouterProcessError) and "exited with 1:\n" in str(err)
    with pytest.raises(ValueError):
        Readiness(0)


def test_two_workers_lines_run_together_still_count_twice() -> None:
    from lasso_rpc.battle.providers.router_process import Readiness

    r = Readiness(2)
    line = (
        "lasso-rpc listening on http://127.0.0.1:35543 (pid 25328)"
        "lasso-rpc listening on http://127.0.0.1:35543 (pid 25327)\n"
    )
    assert r.feed(line) and [w.pid for w in r.listening] == [25328, 25327]
