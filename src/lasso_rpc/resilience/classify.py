"""Error classification, in one place: what an upstream answer means for failover and breakers.

Five classes (``ErrorClass``)::

    class         fail over?  breaker                      examples
    ------------  ----------  ---------------------------  ------------------------------------
    client        no          "alive"                      execution reverted, nonce too low,
                                                           insufficient funds, invalid params
    provider      yes         counts a fault               5xx, timeouts, internal error, auth
    rate_limited  yes         counts a rate limit          HTTP 429, -32005, "capacity", 1015
    capability    yes         "alive"                      method not found/whitelisted, free
                                                           tier, range/size limits, pruned state
    lagging       yes         "alive"                      header not found, unknown block

``classify_response`` applies the rules top-down; the first that fires wins. The rules are
below; their data (the classes, the patterns, the code table) is in ``error_rules.py``.

1. Per-provider ``overrides`` (config ``error_overrides``): ``"msg:<substring>"`` keys first
   (case-insensitive, over message and string data), then the code as a string (``"-32000"``).
2. HTTP status:

   ================  =========================================================================
   status            class
   ================  =========================================================================
   2xx, no error     ``None`` (success; a ``null`` result beyond the provider's head is the
                     pipeline's call: only it knows the head)
   2xx + error       the body decides (3.)
   429               rate_limited, whatever the body
   413               capability (that provider's body limit; another may take the request)
   400, 409, 422     the body decides; no body: provider
   5xx               provider, unless a *message* rule (3a) recognises the body: a 500 saying
                     "execution reverted" is still the client's fault, a 500 saying "backend
                     response too large" is a size limit
   401, 403, 404,    provider (auth, plan, wrong URL: that provider's problem), unless the body
   405, other 4xx,   says rate_limited or capability (proxyd answers 403 "rpc method is not
   1xx, 3xx          whitelisted", gateways answer 404 for -32601)
   ================  =========================================================================

3. JSON-RPC error body. a) Message rules (regexes over message + string data), in order:

   ====  ==========================================================  ==========================
   step  matches (abridged; see ``error_rules.py``)                  class
   ====  ==========================================================  ==========================
   1     already known, known transaction, already imported          client (see
                                                                     ``is_already_known``)
   2     execution reverted, VM execution error, out of gas          client (before any limit
                                                                     rule: a revert reason
                                                                     may say "rate limit")
   3     nonce too low/high, insufficient funds, intrinsic gas,      client
         underpriced, fee cap, invalid sender/signature/chain id,
         invalid block range
   4     rate limit, too many requests, capacity, request rate       rate_limited
         exceeded, request limit reached, RPS limit, quota, 1015
   5     returned more than N results, block range too wide/large,   capability (limits of that
         limited to a N range, response size/too large, batch size   provider; one with larger
                                                                     limits may answer)
   6     does not exist/is not available, method not found/          capability
         supported/enabled, unsupported method, not whitelisted,
         free tier
   7     missing trie node, historical state unavailable, pruned,    capability (archive data)
         no state available, world state unavailable
   8     header not found, unknown block, block not found, block     lagging
         out of range, transaction not found, initial sync
   9     timeout, timed out, execution aborted                       provider; capability for
                                                                     trace_/debug_/eth_getLogs
                                                                     (a heavier query than that
                                                                     node's limit, not a fault)
   10    internal error, unauthorized, API key, project ID,          provider
         backend offline, upstream connect error, txpool is full
   11    invalid argument, cannot unmarshal, missing value for       client
         required argument, filter not found
   ====  ==========================================================  ==========================

   b) Codes, when no message rule fired:

   ======  =================================  =================================================
   code    class                              why
   ======  =================================  =================================================
   3       client                             execution error (revert), EIP-1474
   -32700  provider                           the router always sends valid JSON
   -32600  provider                           the router validated the envelope; upstream
                                              -32600 means "batch too large", plan or auth
                                              (Alchemy uses it for all three)
   -32601  capability                         the router refused unknown methods already, so
                                              this is that provider's method set
   -32602  client                             invalid params
   -32603  provider                           internal error
   -32000  provider                           geth's catch-all; the message rules did the work
   -32001  lagging                            resource not found (block/tx unknown to that node)
   -32002  provider                           resource unavailable / geth "request timed out"
   -32003  client                             transaction rejected (EIP-1474)
   -32004  capability                         method not supported (EIP-1474)
   -32005  rate_limited                       limit exceeded (EIP-1474)
   -32604  capability                         besu "Method not enabled"
   -39001  lagging                            unknown block (besu, nethermind)
   4444    capability                         pruned history unavailable (EIP-4444)
   429     rate_limited                       Alchemy's code inside HTTP-200 batch answers
   other   provider                           unknown: fail over, count it
   ======  =================================  =================================================

Decisions worth knowing:

- "header not found" is always lagging. Full nodes keep every header, so it means a block past
  that node's head (or Infura's load balancer hitting a node behind). Old *state* on a full node
  fails differently ("missing trie node", "historical state unavailable"), and that is
  capability: an archive provider can answer.
- Range and size limits ("query returned more than 10000 results", "block range is too wide")
  are capability, not client: providers differ widely (Alchemy free: 10 blocks, publicnode:
  50,000) and another one may serve the same request. Capability is therefore not always
  "this method never works here": ``is_method_unsupported`` says when it is.
- "filter not found" is client: filters live on one node, the client must create a new one.
- Codes collide between clients (-32005 is besu's "gas limit exceeds block gas limit",
  -32003 geth's "response too large"), which is why messages are matched before codes.
- ``classify_exception``: every ``TransportError`` (connect, reset, timeout, response too
  large, malformed body) is provider; an ``UpstreamFault`` carries its class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from lasso_rpc.errors import TransportError, UpstreamFault
from lasso_rpc.resilience.error_rules import (
    ALREADY_KNOWN,
    ARCHIVE,
    BODY_DECIDES,
    BY_CODE,
    HEAVY_PREFIXES,
    LIMITS,
    MESSAGE_RULES,
    ONLY_LIMITS,
    TIMEOUT,
    UNSUPPORTED,
    UNSUPPORTED_CODES,
    ErrorClass,
)

__all__ = [
    "ErrorClass",
    "RpcErrorInfo",
    "classify_exception",
    "classify_response",
    "is_already_known",
    "is_method_unsupported",
]


@dataclass(frozen=True, slots=True)
class RpcErrorInfo:
    """A JSON-RPC error object from an upstream."""

    code: int
    message: str
    data: object | None = None


def classify_response(
    *,
    status: int,
    error: RpcErrorInfo | None,
    method: str,
    overrides: Mapping[str, str] | None = None,
) -> ErrorClass | None:
    """Class of one upstream answer, or None for a success. Rules: the module docstring."""
    if error is not None and overrides:
        forced = _override(error, overrides)
        if forced is not None:
            return forced
    if status == 429:
        return ErrorClass.RATE_LIMITED
    if status == 413:
        return ErrorClass.CAPABILITY
    if 200 <= status < 300:
        return None if error is None else _classify_error(error, method)[0]
    if error is None:
        return ErrorClass.PROVIDER
    cls, by_message = _classify_error(error, method)
    if status in BODY_DECIDES:
        return cls
    if status >= 500:
        return cls if by_message else ErrorClass.PROVIDER
    return cls if cls in ONLY_LIMITS else ErrorClass.PROVIDER


def classify_exception(exc: BaseException) -> ErrorClass:
    """Class of an attempt that produced no answer. Anything unexpected counts as provider."""
    if isinstance(exc, UpstreamFault):
        try:
            return ErrorClass(exc.error_class)
        except ValueError:
            return ErrorClass.PROVIDER
    if isinstance(exc, TransportError):
        return ErrorClass.PROVIDER
    return ErrorClass.PROVIDER


def is_already_known(error: RpcErrorInfo | None) -> bool:
    """The node already has this exact transaction: a resent write succeeded, not failed."""
    return error is not None and ALREADY_KNOWN.search(_text(error)) is not None


def is_method_unsupported(error: RpcErrorInfo | None) -> bool:
    """The provider does not serve this method at all (worth remembering per method).

    Narrower than CAPABILITY, which also covers range/size limits and pruned state: those
    depend on the request, so remembering them would take the method away for every request.
    """
    if error is None or _classify_error(error, "")[0] is not ErrorClass.CAPABILITY:
        return False  # besu sends "Upfront cost exceeds account balance" as -32004
    text = _text(error)
    if LIMITS.search(text) or ARCHIVE.search(text):
        return False
    return error.code in UNSUPPORTED_CODES or UNSUPPORTED.search(text) is not None


def _classify_error(error: RpcErrorInfo, method: str) -> tuple[ErrorClass, bool]:
    """The class and whether a message rule (rather than the bare code) decided it."""
    if error.code == 3:
        return ErrorClass.CLIENT, True
    text = _text(error)
    for pattern, cls in MESSAGE_RULES:
        if pattern.search(text):
            if pattern is TIMEOUT and method.startswith(HEAVY_PREFIXES):
                return ErrorClass.CAPABILITY, True
            return cls, True
    return BY_CODE.get(error.code, ErrorClass.PROVIDER), False


def _text(error: RpcErrorInfo) -> str:
    # Some providers put the real reason in data (Infura: {"reason": ...}; others a string).
    data = error.data
    if isinstance(data, str):
        return f"{error.message} {data}"
    if isinstance(data, Mapping):
        extra = [v for k in ("message", "reason") if isinstance(v := data.get(k), str)]
        if extra:
            return " ".join((error.message, *extra))
    return error.message


def _override(error: RpcErrorInfo, overrides: Mapping[str, str]) -> ErrorClass | None:
    text = _text(error).lower()
    for key, value in overrides.items():
        if key.startswith("msg:") and key[4:].lower() in text:
            return ErrorClass(value)
    by_code = overrides.get(str(error.code))
    return ErrorClass(by_code) if by_code is not None else None
