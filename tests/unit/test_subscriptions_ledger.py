"""The pure ordering/dedupe ledgers and the subscription spec parser."""

from __future__ import annotations

import orjson
import pytest

from lasso_rpc.errors import InvalidParams
from lasso_rpc.subscriptions import (
    FeedSpec,
    Head,
    HeadLedger,
    LogEntry,
    LogLedger,
    Outbox,
    Verdict,
    parse_subscribe,
)

ADDR = "0x" + "ab" * 20
TOPIC = "0x" + "cd" * 32


def head(n: int, tag: str = "a", parent_tag: str | None = None) -> Head:
    ptag = tag if parent_tag is None else parent_tag
    raw = orjson.dumps({"number": hex(n), "hash": f"0x{tag}{n}", "parentHash": f"0x{ptag}{n - 1}"})
    return Head.parse(raw)


def log_entry(block: int, index: int, removed: bool = False) -> LogEntry:
    raw = orjson.dumps(
        {
            "blockNumber": hex(block),
            "blockHash": f"0xB{block}",
            "logIndex": hex(index),
            "removed": removed,
        }
    )
    return LogEntry.parse(raw)


def test_head_verdicts_cover_every_case() -> None:
    led = HeadLedger()
    assert led.verdict(head(10)) is Verdict.FIRST
    led.record(head(10))
    assert led.verdict(head(11)) is Verdict.NEXT
    assert led.verdict(head(10)) is Verdict.DUPLICATE
    assert led.verdict(head(10, "b")) is Verdict.REORG
    assert led.verdict(head(13)) is Verdict.GAP
    assert led.verdict(head(11, "b", parent_tag="b")) is Verdict.FORK
    assert led.verdict(head(9)) is Verdict.STALE  # never delivered: not ours to judge


def test_reorg_record_truncates_what_was_above() -> None:
    led = HeadLedger()
    for n in range(1, 6):
        led.record(head(n))
    led.record(head(4, "b", parent_tag="a"))
    assert led.last == 4 and led.hash_at(5) is None and led.hash_at(4) == "0xb4"
    assert led.verdict(head(5, "b")) is Verdict.NEXT
    assert led.verdict(head(4)) is Verdict.REORG  # the old block 4 again is another change


def test_head_window_is_bounded() -> None:
    led = HeadLedger(window=8)
    for n in range(100):
        led.record(head(n))
    assert led.low == 92 and led.verdict(head(50)) is Verdict.STALE


def test_log_ledger_dedupes_in_a_bounded_window() -> None:
    led = LogLedger(window=16)
    assert led.first_time(log_entry(5, 0))
    assert not led.first_time(log_entry(5, 0))
    assert led.first_time(log_entry(5, 0, removed=True))  # a removal is news
    for i in range(1, 40):
        led.first_time(log_entry(6, i))
    assert led.first_time(log_entry(5, 0))  # long forgotten: memory stays bounded
    led.advance(7)
    led.advance(3)
    assert led.covered == 7


def test_a_start_owes_only_what_comes_after_it() -> None:
    led = HeadLedger()
    led.start_after(10)
    led.start_after(12)  # a later client's view: the first start stands
    assert led.last == 10
    assert led.verdict(head(11)) is Verdict.NEXT  # no hash known for 10: no fork to see
    assert led.verdict(head(10)) is Verdict.STALE and led.verdict(head(9)) is Verdict.STALE
    assert led.verdict(head(13)) is Verdict.GAP
    led.record(head(11))
    led.start_after(20)  # delivering: a start no longer moves it
    assert led.last == 11

    logs = LogLedger()
    logs.start_after(10)
    logs.start_after(12)
    assert logs.covered == 10
    assert not logs.owed(log_entry(10, 0)) and not logs.owed(log_entry(3, 1))
    assert logs.owed(log_entry(11, 0))
    assert LogLedger().owed(log_entry(1, 0))  # no start: every log is owed


def test_equal_filters_share_one_key() -> None:
    a = parse_subscribe(
        orjson.dumps(
            ["logs", {"address": [ADDR.upper().replace("0X", "0x")], "topics": [TOPIC, None]}]
        )
    )
    b = parse_subscribe(orjson.dumps(["logs", {"topics": [[TOPIC]], "address": ADDR}]))
    assert a == b and a.key == b.key and a.kind == "logs"
    assert orjson.loads(a.params) == ["logs", {"address": ADDR, "topics": [TOPIC]}]
    assert parse_subscribe(b'["newHeads"]') == FeedSpec("newHeads", b'["newHeads"]')
    assert parse_subscribe(b'["logs"]').key == "logs:{}"


@pytest.mark.parametrize(
    "params",
    [
        b"[]",
        b'["newPendingTransactions"]',
        b'["logs", {"address": "0x12"}]',
        b'["logs", {"fromBlock": "0x1"}]',
        b'["logs", {"topics": [1]}]',
        b'["logs", "nope"]',
        b'["newHeads", {"includeTransactions": true}]',
    ],
)
def test_bad_subscriptions_are_invalid_params(params: bytes) -> None:
    with pytest.raises(InvalidParams):
        parse_subscribe(params)


def test_block_is_cut_down_to_a_header() -> None:
    raw = orjson.dumps(
        {
            "number": "0x5",
            "hash": "0xAB",
            "parentHash": "0xCD",
            "timestamp": "0x10",
            "transactions": ["0x1"],
            "uncles": [],
            "size": "0x1",
        }
    )
    h = Head.from_block(raw)
    assert (h.number, h.hash, h.parent_hash, h.timestamp) == (5, "0xab", "0xcd", 16)
    assert set(orjson.loads(h.raw)) == {"number", "hash", "parentHash", "timestamp"}
    with pytest.raises(ValueError):
        Head.parse(b'{"hash": "0x1"}')
    with pytest.raises(ValueError):
        LogEntry.parse(b"[1]")


async def test_outbox_overflows_once_and_keeps_order() -> None:
    overflowed: list[int] = []
    box = Outbox(max_messages=3, max_bytes=1000, on_overflow=lambda: overflowed.append(1))
    assert all(box.push(b"%d" % i) for i in range(3))
    sent: list[bytes] = []

    async def send(frame: bytes) -> None:
        sent.append(frame)

    import asyncio

    task = asyncio.create_task(box.drain(send))
    await asyncio.sleep(0)
    assert sent == [b"0", b"1", b"2"]
    for i in range(3, 10):
        box.push(b"%d" % i)  # nothing is drained meanwhile: the 4th queued one overflows
    assert overflowed == [1] and box.overflowed and not box.push(b"x")
    task.cancel()
    big = Outbox(max_messages=100, max_bytes=10, on_overflow=lambda: overflowed.append(2))
    assert big.push(b"12345") and not big.push(b"123456")
    assert overflowed == [1, 2]
