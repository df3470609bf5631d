"""Resilience: error classification, circuit breakers, method facts, the failover pipeline.

The pure pieces live in their own modules and import nothing asynchronous:
``classify`` (the rules deciding what an upstream answer means; their patterns and code table
in ``error_rules``), ``breaker`` (a state machine on an injected clock) and ``methods`` (writes
and head-sensitive calls).

One call: ``call`` holds its values (``CallContext``, ``CallOutcome``); ``pipeline`` runs it
(routing decision, failover budget, deadline, accounting, the ``request.finished`` event);
``attempts`` is one attempt's record (``Try``); ``hedging`` runs a hedged read against the
``AttemptRunner`` protocol, which the pipeline implements.
"""

from lasso_rpc.resilience.breaker import (
    BreakerSnapshot,
    BreakerState,
    BreakerTransition,
    CircuitBreaker,
)
from lasso_rpc.resilience.classify import (
    ErrorClass,
    RpcErrorInfo,
    classify_exception,
    classify_response,
    is_already_known,
    is_method_unsupported,
)
from lasso_rpc.resilience.methods import WRITE_METHODS, is_head_sensitive, is_write_method

__all__ = [
    "WRITE_METHODS",
    "BreakerSnapshot",
    "BreakerState",
    "BreakerTransition",
    "CircuitBreaker",
    "ErrorClass",
    "RpcErrorInfo",
    "classify_exception",
    "classify_response",
    "is_already_known",
    "is_head_sensitive",
    "is_method_unsupported",
    "is_write_method",
]
