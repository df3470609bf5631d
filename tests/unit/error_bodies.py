"""Real upstream error answers and the class each must get.

Every row is an answer seen from a real client or provider: the message text comes from the
client's source (geth ``core/txpool/errors.go`` and ``rpc/errors.go``, besu ``RpcErrorType``,
reth ``rpc-eth-types/src/error``, anvil ``eth/error.rs``, nethermind ``AcceptTxResult`` and
``TxPoolErrorMessages``, optimism ``proxyd/backend.go``) or from published answers of hosted
providers (issue threads, provider docs, and the fixtures of projects that talk to them: erpc's
error normaliser, ponder's ``getLogsRetryHelper`` tests, chainlink's client error table, foundry).
Where the source recorded only the message, the comment says which HTTP status or code is
assumed. Hex payloads are shortened.
"""

from __future__ import annotations

from dataclasses import dataclass

from lasso_rpc.resilience.classify import ErrorClass

C = ErrorClass.CLIENT
P = ErrorClass.PROVIDER
R = ErrorClass.RATE_LIMITED
CAP = ErrorClass.CAPABILITY
LAG = ErrorClass.LAGGING


@dataclass(frozen=True, slots=True)
class Body:
    source: str
    status: int
    code: int
    message: str
    expected: ErrorClass
    method: str = "eth_call"
    data: object | None = None
    already_known: bool = False


# fmt: off
BODIES: tuple[Body, ...] = (
    # --- geth -----------------------------------------------------------------------------------
    Body("geth", 200, 3,
         "execution reverted: ERC20: transfer amount exceeds balance",
         C, data="0x08c379a00000000000000000000000000000000000000000000000000000000000000020"),
    Body("geth", 200, -32000, "nonce too low", C, "eth_sendRawTransaction"),
    Body("geth", 200, -32000,
         "insufficient funds for gas * price + value",
         C, "eth_sendRawTransaction"),
    Body("geth", 200, -32000, "header not found", LAG, "eth_getBalance"),
    Body("geth (full node, state older than 128 blocks)", 200, -32000,
         "missing trie node d67e4d450343046425ae4271474353857ab860dbc0a1dde64b41b5cd3a532bf3 "
         "(path )",
         CAP, "eth_getBalance"),
    Body("geth", 200, -32000,
         "max fee per gas less than block base fee: address "
         "0x71C7656EC7ab88b098defB751B7401B5f6d8976F, maxFeePerGas: 1000000000 baseFee: 7000000000",
         C, "eth_sendRawTransaction"),
    Body("geth", 200, -32000, "transaction underpriced", C, "eth_sendRawTransaction"),
    Body("geth", 200, -32000, "replacement transaction underpriced", C, "eth_sendRawTransaction"),
    Body("geth", 200, -32000, "already known", C, "eth_sendRawTransaction", already_known=True),
    Body("geth", 200, -32000, "intrinsic gas too low", C, "eth_sendRawTransaction"),
    Body("geth", 200, -32000, "invalid sender", C, "eth_sendRawTransaction"),
    Body("geth", 200, -32000, "gas required exceeds allowance (30000000)", C, "eth_estimateGas"),
    Body("geth", 200, -32601,
         "the method trace_block does not exist/is not available",
         CAP, "trace_block"),
    Body("geth", 200, -32602,
         "invalid argument 0: json: cannot unmarshal hex string without 0x prefix into Go value "
         "of type common.Address",
         C, "eth_getBalance"),
    Body("geth (rpc.errcodeTimeout)", 200, -32002, "request timed out", P),
    Body("geth (eth_call over RPCEVMTimeout)", 200, -32000, "execution aborted (timeout = 5s)", P),
    Body("geth (tracer over its timeout: a heavy query)", 200, -32000,
         "execution aborted (timeout = 5s)",
         CAP, "debug_traceCall"),
    Body("geth (rpc.errcodeResponseTooLarge)", 200, -32003,
         "response too large",
         CAP, "eth_getBlockReceipts"),
    Body("geth (batch over BatchRequestLimit)", 200, -32600,
         "batch too large",
         CAP, "eth_blockNumber"),
    Body("geth", 200, -32000,
         "required historical state unavailable (reexec=128)",
         CAP, "debug_traceTransaction"),
    Body("geth", 200, -32603, "method handler crashed", P),
    Body("geth / erigon filters", 200, -32000, "invalid block range params", C, "eth_getLogs"),
    # --- erigon ---------------------------------------------------------------------------------
    Body("erigon (pruned node)", 200, -32000,
         "old data not available due to pruning",
         CAP, "eth_getBalance"),
    Body("erigon", 200, -32000, "already known", C, "eth_sendRawTransaction", already_known=True),
    # --- nethermind -----------------------------------------------------------------------------
    Body("nethermind (TransactionRejected -32010)", 200, -32010,
         "OldNonce, Current nonce: 22, nonce of rejected tx: 17",
         C, "eth_sendRawTransaction"),
    Body("nethermind", 200, -32010,
         "AlreadyKnown",
         C, "eth_sendRawTransaction", already_known=True),
    Body("nethermind", 200, -32010,
         "InsufficientFunds, Account balance: 0, cumulative cost: 21000",
         C, "eth_sendRawTransaction"),
    Body("nethermind", 200, -32010,
         "FeeTooLow, MaxFeePerGas too low. MaxFeePerGas: 1, BaseFee: 7, MaxPriorityFeePerGas:1, "
         "Block number: 5",
         C, "eth_sendRawTransaction"),
    Body("nethermind (message per erpc's missing-data list; code assumed)", 200, -32002,
         "No state available for block 0x5a3f1b2c",
         CAP, "eth_getBalance"),
    # --- besu -----------------------------------------------------------------------------------
    Body("besu NONCE_TOO_LOW", 200, -32001, "Nonce too low", C, "eth_sendRawTransaction"),
    Body("besu TRANSACTION_UPFRONT_COST_EXCEEDS_BALANCE", 200, -32004,
         "Upfront cost exceeds account balance",
         C, "eth_sendRawTransaction"),
    Body("besu EXCEEDS_BLOCK_GAS_LIMIT (-32005, not a rate limit)", 200, -32005,
         "Transaction gas limit exceeds block gas limit",
         C, "eth_sendRawTransaction"),
    Body("besu EXCEEDS_RPC_MAX_BLOCK_RANGE", 200, -32005,
         "Requested range exceeds maximum RPC range limit",
         CAP, "eth_getLogs"),
    Body("besu EXCEEDS_RPC_MAX_BATCH_SIZE", 200, -32005,
         "Number of requests exceeds max batch size",
         CAP, "eth_blockNumber"),
    Body("besu ETH_SEND_TX_ALREADY_KNOWN", 200, -32000,
         "Known transaction",
         C, "eth_sendRawTransaction", already_known=True),
    Body("besu INVALID_TRANSACTION_SIGNATURE", 200, -32002,
         "Invalid signature",
         C, "eth_sendRawTransaction"),
    Body("besu REVERT_ERROR", 200, -32000, "Execution reverted", C, data="0x08c379a0"),
    Body("besu UNKNOWN_BLOCK", 200, -39001, "Unknown block", LAG, "eth_getBlockByNumber"),
    Body("besu BLOCK_NOT_FOUND", 200, -32000, "Block not found", LAG, "debug_traceBlockByNumber"),
    Body("besu METHOD_NOT_ENABLED", 200, -32604,
         "Method not enabled",
         CAP, "debug_traceTransaction"),
    Body("besu METHOD_NOT_FOUND", 200, -32601,
         "Method not found",
         CAP, "parity_pendingTransactions"),
    Body("besu WORLD_STATE_UNAVAILABLE", 200, -32000,
         "World state unavailable",
         CAP, "eth_getBalance"),
    Body("besu CHAIN_HEAD_WORLD_STATE_NOT_AVAILABLE", 200, -32008,
         "Initial sync is still in progress",
         LAG),
    Body("besu TIMEOUT_ERROR", 200, -32603, "Timeout expired", P),
    # --- reth -----------------------------------------------------------------------------------
    Body("reth (TransactionRejected -32003)", 200, -32003,
         "nonce too low: next nonce 5, tx nonce 3",
         C, "eth_sendRawTransaction"),
    Body("reth", 200, -32003,
         "insufficient funds for gas * price + value: have 0 want 21000000000000",
         C, "eth_sendRawTransaction"),
    Body("reth HeaderNotFound (ResourceNotFound -32001)", 200, -32001,
         "block not found: 0x1312d00",
         LAG, "eth_getBlockReceipts"),
    Body("reth / geth PrunedHistoryUnavailable (EIP-4444)", 200, 4444,
         "pruned history unavailable",
         CAP, "eth_getLogs"),
    Body("reth", 200, -32000,
         "out of gas: gas required exceeds allowance: 21000",
         C, "eth_estimateGas"),
    # --- anvil ----------------------------------------------------------------------------------
    Body("anvil", 200, 3,
         "execution reverted: Ownable: caller is not the owner",
         C, data="0x08c379a0"),
    Body("anvil (transaction_rejected -32003)", 200, -32003,
         "nonce too low",
         C, "eth_sendRawTransaction"),
    Body("anvil PoolError::AlreadyImported", 200, -32003,
         "transaction already imported",
         C, "eth_sendRawTransaction", already_known=True),
    Body("anvil BlockOutOfRange (sent as -32602, yet lagging)", 200, -32602,
         "BlockOutOfRangeError: block height is 100 but requested was 105",
         LAG, "eth_getBlockByNumber"),
    Body("anvil", 200, -32000, "filter not found", C, "eth_getFilterChanges"),
    Body("anvil (jsonrpsee)", 200, -32601, "Method not found", CAP, "trace_filter"),
    # --- Infura ---------------------------------------------------------------------------------
    Body("infura", 429, -32005,
         "project ID request rate exceeded",
         R,
         "eth_blockNumber",
         data={"see": "https://infura.io/dashboard", "current_rps": 13.333,
               "allowed_rps": 10.0, "backoff_seconds": 30.0}),
    Body("infura (HTTP 200)", 200, -32005,
         "daily request count exceeded, request rate limited",
         R, data={"see": "https://infura.io/dashboard"}),
    Body("infura (legacy endpoint)", 429, -32005,
         "legacy access request rate exceeded",
         R, data={"reason": "project ID not provided", "see": "https://infura.io/dashboard"}),
    Body("infura", 200, -32005,
         "query returned more than 10000 results. Try with this block range [0x121eac0, "
         "0x121f1d4].",
         CAP, "eth_getLogs"),
    Body("infura", 403, -32002, "rejected due to project ID settings", P),
    Body("infura (load-balanced node behind)", 200, -32000,
         "header not found",
         LAG, "eth_getBlockByNumber"),
    # --- Alchemy --------------------------------------------------------------------------------
    Body("alchemy", 429, 429,
         "Your app has exceeded its compute units per second capacity. If you have retries "
         "enabled, you can safely ignore this message. If not, check out "
         "https://docs.alchemy.com/reference/throughput",
         R),
    Body("alchemy (HTTP 200, one item of a batch)", 200, 429,
         "Your app has exceeded its compute units per second capacity. If you have retries "
         "enabled, you can safely ignore this message. If not, check out "
         "https://docs.alchemy.com/reference/throughput",
         R),
    Body("alchemy", 429, 429,
         "Monthly capacity limit exceeded. Visit https://dashboard.alchemy.com/settings/billing "
         "to upgrade your scaling policy for continued service.",
         R),
    Body("alchemy free tier", 400, -32600,
         "Under the Free tier plan, you can make eth_getLogs requests with up to a 10 block "
         "range. Based on your parameters, this block range should work: [0x121eac0, 0x121eac9]. "
         "Upgrade to PAYG for expanded block range.",
         CAP, "eth_getLogs"),
    Body("alchemy free tier (HTTP status assumed)", 400, -32600,
         "debug_traceTransaction is not available on the Free tier - upgrade to Pay As You Go, "
         "or Enterprise for access.",
         CAP, "debug_traceTransaction"),
    Body("alchemy", 200, -32602,
         "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block "
         "range and no limit on the response size, or you can request any block range with a cap "
         "of 10K logs in the response. Based on your parameters and the response size limit, this "
         "block range should work: [0x0, 0x1e8479]",
         CAP, "eth_getLogs"),
    Body("alchemy (erpc vendor rule; HTTP status assumed)", 401, -32600,
         "Must be authenticated!",
         P),
    Body("alchemy (message per erpc normaliser; status/code assumed)", 400, -32600,
         "Unsupported method: bor_getAuthor. See available methods at "
         "https://docs.alchemy.com/alchemy/documentation/apis",
         CAP, "bor_getAuthor"),
    # --- QuickNode ------------------------------------------------------------------------------
    Body("quicknode", 429, -32007,
         "15/second request limit reached - reduce calls per second or upgrade your account at "
         "quicknode.com",
         R),
    Body("quicknode (HTTP 200)", 200, -32007,
         "300/second request limit reached - reduce calls per second or upgrade your account at "
         "quicknode.com",
         R),
    Body("quicknode (HTTP 413)", 413, -32614,
         "eth_getLogs is limited to a 10,000 range",
         CAP, "eth_getLogs"),
    Body("quicknode (HTTP 200)", 200, -32614,
         "eth_getLogs is limited to a 10,000 range",
         CAP, "eth_getLogs"),
    Body("quicknode (foundry's retry rule)", 200, -32012, "credits limited to 6000/sec", R),
    # --- Ankr -----------------------------------------------------------------------------------
    Body("ankr (public endpoint without key)", 200, -32000,
         "Unauthorized: You must authenticate your request with an API key. Create an account on "
         "https://www.ankr.com/rpc/ and generate your personal API key for free.",
         P),
    Body("ankr", 200, -32600, "block range is too wide", CAP, "eth_getLogs"),
    # --- Cloudflare -----------------------------------------------------------------------------
    Body("cloudflare-eth.com", 200, -32603, "Internal error", P),
    Body("cloudflare-eth.com (code not recorded; -32603 assumed)", 200, -32603,
         "Cannot fulfill request",
         P),
    Body("cloudflare-eth.com (code not recorded; -32000 assumed)", 200, -32000,
         "Max range: 800",
         CAP, "eth_getLogs"),
    # --- Llamarpc / Chainstack / publicnode / Blast / dRPC --------------------------------------
    Body("llamarpc", 200, -32602,
         "query exceeds max results 20000, retry with the range 21102592-21102595",
         CAP, "eth_getLogs"),
    Body("chainstack (code assumed)", 429, -32005,
         "You've exceeded the RPS limit available on the current plan.",
         R),
    Body("chainstack (same text over HTTP 200)", 200, -32005,
         "You've exceeded the RPS limit available on the current plan.",
         R),
    Body("chainstack", 200, -32602, "Block range limit exceeded.", CAP, "eth_getLogs"),
    Body("publicnode (code assumed)", 200, -32000,
         "exceed maximum block range: 50000",
         CAP, "eth_getLogs"),
    Body("blastapi paid plan (code assumed)", 200, -32000,
         "eth_getLogs exceeds the range allowed for your plan (10001 > 10000)",
         CAP, "eth_getLogs"),
    Body("drpc free tier", 200, 35,
         "ranges over 10000 blocks are not supported on freetier",
         CAP, "eth_getLogs"),
    # --- proxyd (mainnet.optimism.io, mainnet.base.org) -----------------------------------------
    Body("proxyd ErrMethodNotWhitelisted", 403, -32601,
         "rpc method is not whitelisted",
         CAP, "eth_maxPriorityFeePerGas"),
    Body("proxyd ErrNoBackends", 503, -32011,
         "no backend is currently healthy to serve traffic",
         P),
    Body("proxyd ErrBackendOffline", 503, -32010, "backend offline", P),
    Body("proxyd ErrOverRateLimit", 429, -32016, "over rate limit", R),
    Body("proxyd ErrBackendOverCapacity", 429, -32012, "backend is over capacity", R),
    Body("proxyd ErrBackendResponseTooLarge", 500, -32020,
         "backend response too large",
         CAP, "eth_getLogs"),
    Body("proxyd ErrBlockOutOfRange", 400, -32019,
         "block is out of range",
         LAG, "eth_getBlockByNumber"),
    Body("proxyd ErrGatewayTimeout", 504, -32015, "gateway timeout", P),
    Body("optimism public RPC", 200, -32000, "Block range is too large", CAP, "eth_getLogs"),
    # --- other chains and gateways --------------------------------------------------------------
    Body("bsc public RPC (getLogs switched off; EIP-1474 default applies)", 200, -32005,
         "limit exceeded",
         R, "eth_getLogs"),
    Body("avalanche C-chain", 200, -32000,
         "requested too many blocks from 0 to 20000, maximum is set to 2048",
         CAP, "eth_getLogs"),
    Body("arbitrum nitro", 200, -32000,
         "logs matched by query exceeds limit of 10000",
         CAP, "eth_getLogs"),
    Body("envoy-fronted provider (gateway wraps the text; code assumed)", 503, -32603,
         "upstream connect error or disconnect/reset before headers. reset reason: connection "
         "failure",
         P),
    Body("gateway answering 500 with a client error", 500, -32000, "execution reverted", C),
    Body("pokt-style gateway: -32601 over HTTP 404", 404, -32601,
         "method not found",
         CAP, "trace_block"),
)
# fmt: on
