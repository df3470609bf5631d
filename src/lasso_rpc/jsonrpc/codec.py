"""The only place that touches raw JSON-RPC bytes.

Requests are decoded into an envelope whose ``params`` and ``id`` stay raw bytes; upstream answers
are decoded into an envelope whose ``result`` stays raw bytes and is copied to the client as is.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from lasso_rpc.errors import InvalidRequest, ParseError
from lasso_rpc.jsonrpc.shape import MalformedJson, is_utf8, within_depth

__all__ = [
    "MAX_DEPTH",
    "Call",
    "ErrorInfo",
    "UpstreamReply",
    "decode_body",
    "decode_error",
    "decode_item",
    "decode_upstream",
    "encode_error",
    "encode_raw_error",
    "encode_result",
    "encode_upstream_request",
    "encode_with_meta",
]


class _Envelope(msgspec.Struct):
    jsonrpc: Any = msgspec.UNSET
    method: Any = msgspec.UNSET
    params: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    id: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class UpstreamReply(msgspec.Struct):
    id: Any = None
    result: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    error: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class ErrorInfo(msgspec.Struct, frozen=True):
    code: int
    message: str
    data: Any = None


class _ErrorObj(msgspec.Struct):
    code: int
    message: str = ""
    data: Any = None


_env_decoder = msgspec.json.Decoder(_Envelope)
_batch_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_reply_decoder = msgspec.json.Decoder(UpstreamReply)
_err_decoder = msgspec.json.Decoder(_ErrorObj)
_NULL = b"null"
_EMPTY_PARAMS = b"[]"
_ID_START = frozenset(b'"-0123456789n')
_scalar_decoder = msgspec.json.Decoder(msgspec.Raw)
#: Default nesting limit (``server.limits.max_json_depth``): far above any Ethereum call.
MAX_DEPTH = 64
#: Batch limits up to this are decoded into a bounded struct (see ``_batch_items``).
_MAX_BOUNDED_BATCH = 4096
#: A batch body with fewer commas has fewer items: a plain list stays small (64 B an item).
_LIST_OK = 4096
_OptRaw = msgspec.Raw | msgspec.UnsetType
_bounded: dict[int, msgspec.json.Decoder[Any]] = {}


class Call(msgspec.Struct, frozen=True):
    """One JSON-RPC call as the client sent it. ``id_raw`` is None for a notification."""

    method: str
    params: bytes
    id_raw: bytes | None

    @property
    def is_notification(self) -> bool:
        return self.id_raw is None


def _invalid(message: str, id_raw: bytes | None) -> InvalidRequest:
    exc = InvalidRequest(message)
    exc.id_raw = id_raw  # answered with the request's id when it could be read
    return exc


def _to_call(env: _Envelope) -> Call:
    id_raw = None if env.id is msgspec.UNSET else bytes(env.id)
    if id_raw is not None and (not id_raw or id_raw[0] not in _ID_START):
        raise _invalid("id must be a string, a number or null", None)
    if env.jsonrpc != "2.0":
        raise _invalid('jsonrpc must be "2.0"', id_raw)
    method = env.method
    if not isinstance(method, str) or not method:
        raise _invalid("method must be a non-empty string", id_raw)
    if env.params is msgspec.UNSET:
        params = _EMPTY_PARAMS
    else:
        params = bytes(env.params)
        if params[:1] not in (b"[", b"{"):
            raise _invalid("params must be an array or an object", id_raw)
    return Call(method, params, id_raw)


def decode_item(raw: bytes) -> Call:
    try:
        env = _env_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid request: {exc}") from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ParseError("parse error") from exc
    except RecursionError as exc:  # only past the nesting check, on a deep stack
        raise _too_deep(MAX_DEPTH) from exc
    return _to_call(env)


def decode_body(
    body: bytes, *, max_depth: int = MAX_DEPTH, max_batch: int | None = None
) -> list[Call | InvalidRequest] | Call:
    """A single call, or a batch as a list where invalid items are kept as their error.

    Raises ``ParseError`` for bytes that are not JSON (invalid UTF-8 included) and
    ``InvalidRequest`` for a body that is not a request at all, an empty batch, a batch of more
    than ``max_batch`` items, or JSON nested deeper than ``max_depth`` levels. Memory stays
    bounded by the body: a huge batch is counted before it is built.
    """
    if not body.isascii() and not is_utf8(body):
        raise ParseError("parse error: invalid UTF-8")
    head = body.lstrip()[:1]
    if head == b"{":
        # The bracket count settles a plain call at once; only more brackets than the limit
        # are looked at closer.
        if body.count(b"[") + body.count(b"{") > max_depth and not _within(body, max_depth):
            raise _too_deep(max_depth)
        return decode_item(body)
    if head == b"[":
        return _decode_batch(body, max_depth, max_batch)
    if not head:
        raise InvalidRequest("empty body")
    try:
        _scalar_decoder.decode(body)
    except msgspec.ValidationError:
        pass  # valid JSON out of msgspec's range (1e999): still not a request
    except msgspec.DecodeError as exc:
        raise ParseError("parse error") from exc
    raise InvalidRequest("request must be an object or an array")


def _decode_batch(
    body: bytes, max_depth: int, max_batch: int | None
) -> list[Call | InvalidRequest]:
    try:
        items = _batch_items(body, max_batch)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ParseError("parse error") from exc
    except RecursionError as exc:
        raise _too_deep(max_depth) from exc
    if not items:
        raise InvalidRequest("empty batch")
    if max_batch is not None and len(items) > max_batch:
        raise InvalidRequest(
            f"batch exceeds the limit of {max_batch} calls", data={"limit": max_batch}
        )
    out: list[Call | InvalidRequest] = []
    inner = max_depth - 1
    for it in items:
        raw = bytes(it)
        # Too deep anywhere: the whole body is refused, as when msgspec's own recursion gives
        # up (at a depth that depends on the stack), so the answer never depends on which did.
        if raw.count(b"[") + raw.count(b"{") > inner and not _within(raw, inner):
            raise _too_deep(max_depth)
        try:
            out.append(decode_item(raw))
        except (InvalidRequest, ParseError) as exc:
            out.append(exc if isinstance(exc, InvalidRequest) else InvalidRequest(str(exc)))
    return out


def _batch_items(body: bytes, max_batch: int | None) -> list[msgspec.Raw]:
    """The batch's items, at most ``max_batch + 1`` of them (one more says "too many")."""
    if max_batch is None or max_batch > _MAX_BOUNDED_BATCH or body.count(b",") < _LIST_OK:
        # Few commas: at most that many items, a small list whatever the body says.
        return _batch_decoder.decode(body)
    decoder = _bounded.get(max_batch)
    if decoder is None:
        # An array-like struct of max_batch + 1 optional fields: msgspec fills them in order and
        # skips (validating) whatever follows, so a batch of a million items costs 60 bytes per
        # field, never a million-item list.
        fields = [(f"i{k}", _OptRaw, msgspec.UNSET) for k in range(max_batch + 1)]
        struct = msgspec.defstruct(f"Batch{max_batch}", fields, array_like=True)
        decoder = _bounded[max_batch] = msgspec.json.Decoder(struct)
    values = msgspec.structs.astuple(decoder.decode(body))
    n = values.index(msgspec.UNSET) if values[-1] is msgspec.UNSET else len(values)
    return list(values[:n])


def _within(body: bytes, limit: int) -> bool:
    try:
        return within_depth(body, limit)
    except MalformedJson as exc:  # brackets that do not balance: not JSON
        raise ParseError("parse error") from exc


def _too_deep(limit: int) -> InvalidRequest:
    return InvalidRequest(f"JSON nested deeper than {limit} levels", data={"max_depth": limit})


# Messages are built with ``b"".join``, which allocates the output once at its exact size;
# ``%`` formatting over-allocates and then shrinks its buffer (for a 1 MB result: 0.25 MB more
# peak memory per request, and up to 0.5 ms when the allocator has to map fresh pages).
_HEAD = b'{"jsonrpc":"2.0","id":'
_RESULT = b',"result":'
_ERROR = b',"error":'
_META = b',"lasso_meta":'
_END = b"}"
_method_cache: dict[str, bytes] = {}


def encode_upstream_request(upstream_id: int, call: Call) -> bytes:
    mid = _method_cache.get(call.method)
    if mid is None:
        mid = b',"method":' + msgspec.json.encode(call.method) + b',"params":'
        if len(_method_cache) < 4096:
            _method_cache[call.method] = mid
    return b"".join((_HEAD, b"%d" % upstream_id, mid, call.params, _END))


def decode_upstream(body: bytes) -> UpstreamReply:
    """Raises ``msgspec.DecodeError``/``ValidationError`` for a malformed answer."""
    # No regex-and-slice fast path: msgspec's scan of ``result`` is also what rejects a malformed
    # result (failed over as a provider fault). Re-validating a sliced result costs the same
    # (about 360 µs per MB), and the extra Python steps make small answers 2.5x slower.
    return _reply_decoder.decode(body)


def decode_error(raw: bytes) -> ErrorInfo:
    try:
        e = _err_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return ErrorInfo(-32603, "malformed error object from upstream", None)
    return ErrorInfo(e.code, e.message, e.data)


def encode_result(id_raw: bytes | None, result: bytes | msgspec.Raw) -> bytes:
    return b"".join((_HEAD, id_raw or _NULL, _RESULT, result, _END))


def encode_raw_error(id_raw: bytes | None, error_raw: bytes | msgspec.Raw) -> bytes:
    return b"".join((_HEAD, id_raw or _NULL, _ERROR, error_raw, _END))


def encode_error(id_raw: bytes | None, code: int, message: str, data: Any = None) -> bytes:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return b"".join((_HEAD, id_raw or _NULL, _ERROR, orjson.dumps(err), _END))


def encode_with_meta(message: bytes, meta: dict[str, Any]) -> bytes:
    """Adds a ``lasso_meta`` member to an encoded response object."""
    # A memoryview drops the closing brace without copying the message once more.
    return b"".join((memoryview(message)[:-1], _META, orjson.dumps(meta), _END))
