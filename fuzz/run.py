"""Fuzz the router's front door in one run and print the counts (issue 16's "Must show").

    .venv/bin/python fuzz/run.py --bodies 100000 --heads 10000

A router (lean front, two mock providers) runs on a real socket in a thread. Every body is sent
as ``POST /rpc/ethereum`` over keep-alive connections (pipelined in groups) and its answer is
checked against the invariants of ``fuzz/harness.py`` (independent JSON oracle: ids echoed,
batch order, error codes; no 5xx, no dropped connection, no hang); the codec target of
``fuzz/targets.py`` runs on it in process too. Every head is checked against aiohttp's parser
(differential) and sent on a fresh connection. Crashes are unexpected exceptions logged by the
router (``log.exception``) or a dead server; hangs are answers not there within 10 s. Inputs that
break something are written to ``fuzz/failures/``. Exit status 0 only when every target is met.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fuzz.gen import Generator
from fuzz.harness import (
    ServerThread,
    check_body_answer,
    check_head_answer,
    post,
    read_response,
    reader_of,
    reference_parser_answers,
)
from fuzz.targets import InvariantBroken, check_codec, check_head_parser

FAILURES = Path(__file__).parent / "failures"


class Tally:
    def __init__(self) -> None:
        self.breaks = 0
        self.hangs = 0
        self.samples: list[str] = []

    def broke(self, kind: str, n: int, data: bytes, why: str) -> None:
        self.breaks += 1
        self._keep(kind, n, data, why)

    def hung(self, kind: str, n: int, data: bytes) -> None:
        self.hangs += 1
        self._keep(kind, n, data, "hang")

    def _keep(self, kind: str, n: int, data: bytes, why: str) -> None:
        if len(self.samples) < 20:
            FAILURES.mkdir(exist_ok=True)
            (FAILURES / f"{kind}-{n}.bin").write_bytes(data)
            self.samples.append(f"{kind} #{n}: {why}: {data[:160]!r}")


def fuzz_bodies(router: ServerThread, gen: Generator, n: int, group: int, tally: Tally) -> int:
    sent = 0
    sock: socket.socket | None = None
    reader = None
    while sent < n:
        if sock is None:
            sock = socket.create_connection(("127.0.0.1", router.port), timeout=10)
            reader = reader_of(sock)
        batch = [gen.body() for _ in range(min(group, n - sent))]
        for body in batch:
            try:
                check_codec(body)
            except InvariantBroken as exc:
                tally.broke("codec", sent, body, str(exc))
        sock.sendall(b"".join(post(b) for b in batch))
        for i, body in enumerate(batch):
            try:
                resp = read_response(reader)  # type: ignore[arg-type]
            except TimeoutError:
                tally.hung("body", sent + i, body)
                resp = None
                broken: str | None = "hang"
            else:
                broken = check_body_answer(body, resp)
                if broken is not None:
                    tally.broke("body", sent + i, body, broken)
            if broken is not None or resp is None or resp.headers.get("connection") == "close":
                sock.close()
                sock = None
                break  # the rest of the group is sent again as new inputs
        else:
            sent += len(batch)
            continue
        sent += i + 1
    if sock is not None:
        sock.close()
    return sent


def fuzz_heads(router: ServerThread, gen: Generator, n: int, tally: Tally) -> int:
    for k in range(n):
        raw = gen.head()
        try:
            check_head_parser(raw)
        except InvariantBroken as exc:
            tally.broke("head-parser", k, raw, str(exc))
        complete = reference_parser_answers(raw)
        with socket.create_connection(("127.0.0.1", router.port), timeout=10) as sock:
            try:
                sock.sendall(raw)
            except ConnectionError:
                continue  # refused and closed before all of it was read: allowed
            if not complete:
                continue  # a body still due: no answer owed; the client leaves
            reader = reader_of(sock)
            try:
                resp = read_response(reader)
            except TimeoutError:
                tally.hung("head", k, raw)
                continue
            except ConnectionResetError:
                resp = None
            broken = check_head_answer(True, resp, reader)
            if broken is not None:
                tally.broke("head", k, raw, broken)
    return n


def healthy(router: ServerThread) -> bool:
    with router.connect() as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        r = read_response(sock)
        if r is None or r.status != 200:
            return False
        sock.sendall(post(b'{"jsonrpc":"2.0","id":"after","method":"eth_blockNumber"}'))
        r = read_response(sock)
        return r is not None and r.status == 200 and b'"result":"0x' in r.body


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--bodies", type=int, default=100_000)
    ap.add_argument("--heads", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--group", type=int, default=16, help="bodies pipelined per write")
    args = ap.parse_args()

    logging.getLogger("lasso_rpc").setLevel(logging.ERROR)  # warnings (failed calls) are noise
    logging.getLogger().addHandler(logging.NullHandler())  # no "last resort" printing
    gen = Generator(args.seed)
    tally = Tally()
    t0 = time.monotonic()
    with ServerThread() as router:
        rss0 = router.rss_mb()
        bodies = fuzz_bodies(router, gen, args.bodies, args.group, tally)
        t_bodies = time.monotonic() - t0
        heads = fuzz_heads(router, gen, args.heads, tally)
        ok = healthy(router)
        deadline = time.monotonic() + 5
        while router.gate_total() != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        gate = router.gate_total()
        rss1 = router.rss_mb()
    crashes = router.errors.records
    dead = router.error is not None
    elapsed = time.monotonic() - t0
    rows = [
        ("fuzzed bodies", f"{bodies}", f">= {args.bodies}", bodies >= args.bodies),
        ("fuzzed request heads", f"{heads}", f">= {args.heads}", heads >= args.heads),
        (
            "crashes (exceptions logged, server died)",
            f"{len(crashes) + dead}",
            "0",
            len(crashes) + dead == 0,
        ),
        ("hangs (no answer in 10 s)", f"{tally.hangs}", "0", tally.hangs == 0),
        ("invariant breaks", f"{tally.breaks}", "0", tally.breaks == 0),
        ("router healthy afterwards", "yes" if ok else "no", "yes", ok),
        ("connections still counted at the gate", f"{gate}", "0", gate == 0),
        ("RSS growth, MB", f"{rss1 - rss0:.1f}", "<= 64", rss1 - rss0 <= 64),
    ]
    print(
        f"fuzz run: seed {args.seed}, {elapsed:.0f} s (bodies {t_bodies:.0f} s, "
        f"{bodies / max(t_bodies, 1e-9):.0f}/s; heads {elapsed - t_bodies:.0f} s)"
    )
    width = max(len(r[0]) for r in rows)
    for name, value, target, met in rows:
        print(f"  {name:<{width}}  {value:>10}  target {target:<8}  {'MET' if met else 'MISSED'}")
    for line in tally.samples + crashes[:5]:
        print("  !", line)
    return 0 if all(r[3] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
