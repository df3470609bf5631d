"""The one table that turns router exceptions into JSON-RPC error codes and HTTP statuses."""

from __future__ import annotations

from lasso_rpc.errors import (
    AllAttemptsFailed,
    BodyTooLarge,
    DeadlineExceeded,
    Forbidden,
    InternalError,
    InvalidParams,
    InvalidRequest,
    MethodNotAllowed,
    NoProviderAvailable,
    ParseError,
    RateLimited,
    RequestRejected,
    Unauthorized,
)

__all__ = ["ERROR_TABLE", "error_code"]

#: exception → (JSON-RPC code, HTTP status for a non-batch request)
ERROR_TABLE: dict[type[RequestRejected], tuple[int, int]] = {
    ParseError: (-32700, 200),
    InvalidRequest: (-32600, 200),
    MethodNotAllowed: (-32601, 200),
    InvalidParams: (-32602, 200),
    InternalError: (-32603, 200),
    NoProviderAvailable: (-32001, 200),
    AllAttemptsFailed: (-32002, 200),
    DeadlineExceeded: (-32003, 200),
    BodyTooLarge: (-32004, 413),
    RateLimited: (-32005, 429),
    Unauthorized: (-32006, 401),
    Forbidden: (-32006, 403),
}


def error_code(exc: RequestRejected) -> tuple[int, int]:
    for cls in type(exc).__mro__:
        hit = ERROR_TABLE.get(cls)
        if hit is not None:
            return hit
    return (-32603, 200)
