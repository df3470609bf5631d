"""Property suite, the whole server on a real socket: fuzzed bodies over keep-alive connections and
fuzzed request heads on fresh ones, each answer checked against the invariants of
``fuzz/harness.py``; afterwards the router is healthy, every connection's place at the gate is
given back and memory is flat."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from fuzz.harness import (
    ServerThread,
    check_body_answer,
    check_head_answer,
    post,
    read_response,
    reader_of,
    reference_parser_answers,
)
from fuzz.strategies import bodies, heads
from hypothesis import given

from tests.fuzz.conftest import ci


@pytest.fixture(scope="module")
def router() -> Iterator[ServerThread]:
    with ServerThread() as st:
        yield st


def _healthy(router: ServerThread) -> None:
    with router.connect() as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        r = read_response(sock)
        assert r is not None and r.status == 200
        sock.sendall(post(b'{"jsonrpc":"2.0","id":"after","method":"eth_blockNumber"}'))
        r = read_response(sock)
        assert r is not None and r.status == 200 and b'"id":"after","result":"0x' in r.body


def _no_errors_logged(router: ServerThread) -> None:
    assert router.errors.records == [], "\n".join(router.errors.records[:3])


def _gate_empties(router: ServerThread) -> None:
    deadline = time.monotonic() + 5
    while router.gate_total() != 0:
        assert time.monotonic() < deadline, f"connections still counted: {router.gate_total()}"
        time.sleep(0.02)


def test_fuzzed_bodies_on_keep_alive_connections(router: ServerThread) -> None:
    state: dict[str, object] = {}

    def conn() -> tuple[socket.socket, object]:
        if "sock" not in state:
            sock = socket.create_connection(("127.0.0.1", router.port), timeout=5)
            state["sock"], state["reader"] = sock, reader_of(sock)
        return state["sock"], state["reader"]  # type: ignore[return-value]

    @ci(300)
    @given(bodies)
    def run(body: bytes) -> None:
        sock, reader = conn()
        sock.sendall(post(body))
        resp = read_response(reader)  # type: ignore[arg-type]
        broken = check_body_answer(body, resp)
        assert broken is None, f"{broken}: {body[:300]!r} -> {resp}"
        assert resp is not None
        if resp.headers.get("connection") == "close":
            sock.close()
            state.clear()

    rss0 = router.rss_mb()
    run()
    if "sock" in state:
        state["sock"].close()  # type: ignore[attr-defined]
    _healthy(router)
    _gate_empties(router)
    _no_errors_logged(router)
    assert router.rss_mb() - rss0 < 64  # no body kept alive


def test_fuzzed_heads_on_fresh_connections(router: ServerThread) -> None:
    @ci(300)
    @given(heads())
    def run(request: tuple[bytes, bytes]) -> None:
        head, body = request
        raw = head + body
        # Complete for the reference parser (aiohttp's), or refused by it: an answer is due.
        # An incomplete one (a body still due) may wait: a short read, then the client leaves.
        complete = reference_parser_answers(raw)
        with router.connect(timeout=5.0 if complete else 0.3) as sock:
            sock.sendall(raw)
            reader = reader_of(sock)
            try:
                resp = read_response(reader)
            except TimeoutError:
                assert not complete, f"hang: {raw!r}"
                return
            broken = check_head_answer(complete, resp, reader)
            assert broken is None, f"{broken}: {raw!r} -> {resp}"

    run()
    _healthy(router)
    _gate_empties(router)
    _no_errors_logged(router)
