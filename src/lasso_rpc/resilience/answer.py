"""What one upstream answer means for the attempt that got it: ok, client error or fault."""

from __future__ import annotations

import msgspec

from lasso_rpc.jsonrpc.codec import Call, decode_error, decode_upstream
from lasso_rpc.observability.redact import redact
from lasso_rpc.resilience.attempts import Try
from lasso_rpc.resilience.classify import (
    ErrorClass,
    RpcErrorInfo,
    classify_response,
    is_already_known,
    is_method_unsupported,
)
from lasso_rpc.transport.base import UpstreamResponse

__all__ = ["read_answer"]

_NULL = msgspec.Raw(b"null")


def read_answer(tr: Try, resp: UpstreamResponse, call: Call, uid: int, write: bool) -> None:
    """Fill in ``tr`` from the provider's HTTP answer to request id ``uid``."""
    tr.retry_after_s = resp.retry_after_s
    if resp.status == 429:
        tr.error_class, tr.error = ErrorClass.RATE_LIMITED, "HTTP 429"
        return
    try:
        reply = decode_upstream(resp.body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        tr.error_class = ErrorClass.PROVIDER
        tr.error = f"HTTP {resp.status}: malformed JSON-RPC body"
        return
    if reply.error is not msgspec.UNSET and reply.error != _NULL:  # some send "error": null
        raw = bytes(reply.error)
        info = decode_error(raw)
        err = RpcErrorInfo(info.code, info.message, info.data)
        cls = classify_response(
            status=resp.status,
            error=err,
            method=call.method,
            overrides=tr.provider.config.error_overrides,
        )
        if write and is_already_known(err):
            # The transaction is in the pool already: success for the client and the stats.
            tr.kind, tr.payload = "client", raw
            return
        if cls is ErrorClass.CLIENT or cls is None:
            tr.kind, tr.payload = "client", raw
            return
        tr.error_class = cls
        tr.unsupported = cls is ErrorClass.CAPABILITY and is_method_unsupported(err)
        tr.error = redact(f"HTTP {resp.status}: {info.code} {info.message}"[:300])
        return
    if reply.id != uid:
        tr.error_class, tr.error = ErrorClass.PROVIDER, "wrong id in upstream answer"
        return
    if reply.result is msgspec.UNSET or resp.status >= 300:
        cls = classify_response(status=resp.status, error=None, method=call.method)
        tr.error_class = cls or ErrorClass.PROVIDER
        tr.error = f"HTTP {resp.status} without result"
        return
    tr.kind, tr.payload = "ok", reply.result
