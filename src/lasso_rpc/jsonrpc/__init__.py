"""JSON-RPC messages, codec and method facts."""

from lasso_rpc.jsonrpc.codec import (
    Call,
    ErrorInfo,
    UpstreamReply,
    decode_body,
    decode_error,
    decode_item,
    decode_upstream,
    encode_error,
    encode_raw_error,
    encode_result,
    encode_upstream_request,
    encode_with_meta,
)

__all__ = [
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
