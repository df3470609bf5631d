"""What flows through a subscription: the spec a client asked for, and heads and logs as items.

Items keep the upstream JSON of their ``result`` untouched (``raw``) so fan-out copies bytes;
only the few fields ordering and dedupe need are decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import msgspec
import orjson

from lasso_rpc.errors import InvalidParams

__all__ = ["NEW_HEADS_PARAMS", "FeedSpec", "Head", "Item", "LogEntry", "parse_subscribe"]

Kind = Literal["newHeads", "logs"]
NEW_HEADS_PARAMS = b'["newHeads"]'
_BODY_ONLY = ("transactions", "uncles", "size", "totalDifficulty", "withdrawals")


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """One multiplexable subscription: ``kind`` plus, for logs, the canonical filter JSON."""

    kind: Kind
    params: bytes  # canonical ``eth_subscribe`` params sent upstream
    filter: bytes | None = None  # canonical filter object (logs only)

    @property
    def key(self) -> str:
        return "newHeads" if self.filter is None else f"logs:{self.filter.decode()}"


def parse_subscribe(params: bytes) -> FeedSpec:
    """``eth_subscribe`` params → FeedSpec; InvalidParams for anything else.

    Filters are normalized (lower-case hex, sorted address and topic alternatives, trailing
    wildcards dropped) so that equal filters written differently share one upstream subscription.
    """
    try:
        args = orjson.loads(params)
    except orjson.JSONDecodeError as exc:
        raise InvalidParams("eth_subscribe params must be JSON") from exc
    if not isinstance(args, list) or not args or not isinstance(args[0], str):
        raise InvalidParams('eth_subscribe expects ["newHeads"] or ["logs", {filter}]')
    kind = args[0]
    if kind == "newHeads":
        if len(args) > 1 and args[1] not in (None, {}):
            raise InvalidParams("newHeads takes no options")
        return FeedSpec("newHeads", NEW_HEADS_PARAMS)
    if kind == "logs":
        if len(args) > 2:
            raise InvalidParams("logs takes one filter object")
        spec = args[1] if len(args) > 1 else {}
        flt = orjson.dumps(_normalize_filter(spec), option=orjson.OPT_SORT_KEYS)
        return FeedSpec("logs", b'["logs",' + flt + b"]", flt)
    raise InvalidParams(
        f"unsupported subscription {kind!r}: lasso-rpc multiplexes newHeads and logs"
    )


def _normalize_filter(spec: object) -> dict[str, Any]:
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise InvalidParams("logs filter must be an object")
    unknown = set(spec) - {"address", "topics"}
    if unknown:
        raise InvalidParams(f"logs filter: unsupported key(s) {sorted(unknown)}")
    out: dict[str, Any] = {}
    address = spec.get("address")
    if address is not None:
        addrs = _hex_set(address, 20, "address")
        out["address"] = addrs[0] if len(addrs) == 1 else addrs
    topics = spec.get("topics")
    if topics is not None:
        if not isinstance(topics, list) or len(topics) > 4:
            raise InvalidParams("logs filter: topics must be a list of at most 4 entries")
        norm: list[Any] = [None if t is None else _topic(t) for t in topics]
        while norm and norm[-1] is None:
            norm.pop()
        if norm:
            out["topics"] = norm
    return out


def _topic(value: object) -> str | list[str] | None:
    if isinstance(value, list) and not value:
        return None  # an empty alternative list matches anything, like null
    alts = _hex_set(value, 32, "topic")
    return alts[0] if len(alts) == 1 else alts


def _hex_set(value: object, size: int, what: str) -> list[str]:
    values = value if isinstance(value, list) else [value]
    out: set[str] = set()
    for v in values:
        if not isinstance(v, str) or len(v) != 2 + 2 * size or v[:2] not in ("0x", "0X"):
            raise InvalidParams(f"logs filter: invalid {what} {v!r}")
        try:
            int(v[2:], 16)
        except ValueError:
            raise InvalidParams(f"logs filter: invalid {what} {v!r}") from None
        out.add(v.lower())
    if not out:
        raise InvalidParams(f"logs filter: empty {what} list")
    return sorted(out)


class _HeadFields(msgspec.Struct):
    number: str
    hash: str
    parentHash: str = ""
    timestamp: str = "0x0"


class _LogFields(msgspec.Struct):
    blockNumber: str
    blockHash: str
    logIndex: str
    removed: bool = False


_head_decoder = msgspec.json.Decoder(_HeadFields)
_log_decoder = msgspec.json.Decoder(_LogFields)


@dataclass(frozen=True, slots=True)
class Head:
    number: int
    hash: str
    parent_hash: str
    timestamp: int
    raw: bytes

    @classmethod
    def parse(cls, raw: bytes) -> Head:
        """A ``newHeads`` result; ValueError when it is not a block header."""
        try:
            f = _head_decoder.decode(raw)
            return cls(
                int(f.number, 16), f.hash.lower(), f.parentHash.lower(), int(f.timestamp, 16), raw
            )
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            raise ValueError(f"not a block header: {exc}") from None

    @classmethod
    def from_block(cls, raw: bytes) -> Head:
        """An ``eth_getBlockByNumber`` result, cut down to the header a notification carries."""
        head = cls.parse(raw)
        block = orjson.loads(raw)
        for key in _BODY_ONLY:
            block.pop(key, None)
        return cls(head.number, head.hash, head.parent_hash, head.timestamp, orjson.dumps(block))


@dataclass(frozen=True, slots=True)
class LogEntry:
    block_number: int
    block_hash: str
    log_index: int
    removed: bool
    raw: bytes

    @property
    def key(self) -> tuple[str, int, bool]:
        return (self.block_hash, self.log_index, self.removed)

    @classmethod
    def parse(cls, raw: bytes) -> LogEntry:
        """A ``logs`` result; ValueError when it is not a log."""
        try:
            f = _log_decoder.decode(raw)
            return cls(
                int(f.blockNumber, 16), f.blockHash.lower(), int(f.logIndex, 16), f.removed, raw
            )
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            raise ValueError(f"not a log: {exc}") from None


Item = Head | LogEntry
