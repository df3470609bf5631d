"""The data of error classification: the five classes, the message patterns and the code table.

``resilience/classify.py`` applies them in the order its docstring gives (and documents every
rule); edit a pattern here together with that table. Every pattern is case-insensitive and
searched over the error message plus any string the error's ``data`` carries.
"""

from __future__ import annotations

import enum
import re

__all__ = [
    "ALREADY_KNOWN",
    "ARCHIVE",
    "BODY_DECIDES",
    "BY_CODE",
    "HEAVY_PREFIXES",
    "LIMITS",
    "MESSAGE_RULES",
    "ONLY_LIMITS",
    "TIMEOUT",
    "UNSUPPORTED",
    "UNSUPPORTED_CODES",
    "ErrorClass",
]


class ErrorClass(enum.StrEnum):
    CLIENT = "client"
    PROVIDER = "provider"
    RATE_LIMITED = "rate_limited"
    CAPABILITY = "capability"
    LAGGING = "lagging"

    @property
    def fails_over(self) -> bool:
        """Whether another provider may give a better answer."""
        return self is not ErrorClass.CLIENT


def _rx(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(alternatives), re.IGNORECASE)


ALREADY_KNOWN = _rx(
    r"already known",
    r"\bknown transaction\b",  # besu "Known transaction", zkSync, klaytn
    r"\balreadyknown\b",  # nethermind AcceptTxResult
    r"already imported",  # anvil, openethereum
    r"\balready_exists\b",
    r"already in (?:the )?(?:mempool|tx ?pool|system)",
)

REVERTED = _rx(
    r"execution reverted",
    r"\breverted\b",
    r"vm execution error",
    r"vm exception",
    r"transaction: revert",
    r"invalid opcode",
    r"out of gas",
    r"gas required exceeds allowance",
    r"stack (?:underflow|limit reached)",
)

TX_REJECTED = _rx(
    r"nonce too (?:low|high|far)",
    r"\boldnonce\b",
    r"\bnoncegap\b",
    r"nonce has max value",
    r"(?:incorrect|invalid) (?:transaction )?nonce",
    r"nonce is too distant",
    r"lower nonce exists",
    r"insufficient (?:funds|balance)",
    r"\binsufficientfunds\b",
    r"not enough funds",
    r"upfront cost exceeds",
    r"intrinsic gas",
    r"\bgas too low\b",
    r"exceeds block gas limit",
    r"gas limit is greater than the block gas limit",
    r"gas uint64 overflow",
    r"underpriced",
    r"\bfeetoolow",
    r"fee too low",
    r"gas price (?:too low|below)",
    r"max fee per gas less than",
    r"max (?:priority )?fee per gas higher than",
    r"fee cap exceeded",
    r"exceeds the configured cap",
    r"invalid sender",
    r"invalid (?:transaction )?signature",
    r"(?:invalid|wrong) chain ?id",
    r"only replay-protected",
    r"sender (?:is )?not an eoa",
    r"oversized data",
    r"negative value",
    r"transaction type not supported",
    r"max initcode size",
    r"\bblob (?:transaction|gas|hash)",
    r"max fee per blob gas",
    r"sender account not authorized",
    r"invalid block range",
)

RATE_LIMITED = _rx(
    r"rate.?limit",
    r"too many requests",
    r"request limit reached",
    r"requests? limited to",
    r"request rate exceeded",
    r"request count exceeded",
    r"capacity",
    r"credits limited",
    r"\brps limit\b",
    r"quota",
    r"throttl",
    r"code: ?1015\b",
)

LIMITS = _rx(
    r"returned more than",
    r"response size",
    r"response too large",
    r"exceeds? max(?:imum)? results",
    r"too many (?:results|logs|blocks)",
    r"limited to (?:a )?[\d,.]+",
    r"up to a [\d,.]+ block range",
    r"range (?:is )?too (?:large|wide|big)",
    r"range limit",
    r"exceed(?:s|ed)? (?:the )?(?:max(?:imum)? |allowed )?(?:rpc |block )?range",
    r"range allowed",
    r"max(?:imum)? (?:block )?range",
    r"ranges over",
    r"limit the query",
    r"exceeds limit of",
    r"batch (?:too large|size)",
    r"\bmax batch",
    r"in batch request",
)

UNSUPPORTED = _rx(
    r"does not exist/is not available",
    r"method not (?:found|supported|enabled|allowed|available)",
    r"method \S+ (?:is )?not (?:supported|available|enabled|allowed)",
    r"method is not (?:supported|available|enabled|allowed|whitelisted)",
    r"(?:unsupported|unknown) method",
    r"not whitelisted",
    r"free ?tier",
)

ARCHIVE = _rx(
    r"missing trie node",
    r"historical state",
    r"state \S+ (?:is )?not available",
    r"state (?:is )?(?:not available|unavailable)",
    r"no state available",
    r"\bpruned?\b",
    r"not available due to pruning",
    r"trie does not",
)

LAGGING = _rx(
    r"header not found",
    r"header for hash not found",
    r"unknown block",
    r"block not found",
    r"(?:could not|cannot) find block",
    r"block (?:is )?out of range",
    r"blockoutofrange",
    r"cannot query unfinalized",
    r"after last accepted block",
    r"beyond (?:the )?(?:head|latest)",
    r"transaction not found",
    r"cannot find transaction",
    r"receipts? not found",
    r"initial sync",
)

TIMEOUT = _rx(r"timeout", r"timed out", r"deadline exceeded", r"execution aborted")

PROVIDER_FAULT = _rx(
    r"internal (?:server )?error",
    r"unauthori[sz]ed",
    r"authenticat",
    r"api key",
    r"project id",
    r"\bforbidden\b",
    r"access denied",
    r"\bbackends?\b",
    r"not healthy",
    r"upstream connect",
    r"bad gateway",
    r"service unavailable",
    r"(?:tx)?pool is full",
    r"cannot fulfill request",
    r"handler crashed",
)

BAD_PARAMS = _rx(
    r"invalid argument",
    r"cannot unmarshal",
    r"missing value for required argument",
    r"too many arguments",
    r"invalid params",
    r"filter not found",
)

MESSAGE_RULES: tuple[tuple[re.Pattern[str], ErrorClass], ...] = (
    (ALREADY_KNOWN, ErrorClass.CLIENT),
    (REVERTED, ErrorClass.CLIENT),
    (TX_REJECTED, ErrorClass.CLIENT),
    (RATE_LIMITED, ErrorClass.RATE_LIMITED),
    (LIMITS, ErrorClass.CAPABILITY),
    (UNSUPPORTED, ErrorClass.CAPABILITY),
    (ARCHIVE, ErrorClass.CAPABILITY),
    (LAGGING, ErrorClass.LAGGING),
    (TIMEOUT, ErrorClass.PROVIDER),
    (PROVIDER_FAULT, ErrorClass.PROVIDER),
    (BAD_PARAMS, ErrorClass.CLIENT),
)

# A node-side timeout on these is a query heavier than that node allows, not a sick node.
HEAVY_PREFIXES = ("trace_", "debug_", "eth_getLogs")

BY_CODE: dict[int, ErrorClass] = {
    3: ErrorClass.CLIENT,
    -32700: ErrorClass.PROVIDER,
    -32600: ErrorClass.PROVIDER,
    -32601: ErrorClass.CAPABILITY,
    -32602: ErrorClass.CLIENT,
    -32603: ErrorClass.PROVIDER,
    -32000: ErrorClass.PROVIDER,
    -32001: ErrorClass.LAGGING,
    -32002: ErrorClass.PROVIDER,
    -32003: ErrorClass.CLIENT,
    -32004: ErrorClass.CAPABILITY,
    -32005: ErrorClass.RATE_LIMITED,
    -32604: ErrorClass.CAPABILITY,
    -39001: ErrorClass.LAGGING,
    4444: ErrorClass.CAPABILITY,
    429: ErrorClass.RATE_LIMITED,
}

UNSUPPORTED_CODES = frozenset({-32601, -32004, -32604})
BODY_DECIDES = frozenset({400, 409, 422})
ONLY_LIMITS = frozenset({ErrorClass.RATE_LIMITED, ErrorClass.CAPABILITY})
