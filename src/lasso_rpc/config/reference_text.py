"""The prose of docs/config.md around the generated key tables (see ``reference``)."""

from __future__ import annotations

__all__ = ["BAD_EXAMPLE", "EPILOGUE", "FULL_EXAMPLE", "PROLOGUE"]

FULL_EXAMPLE = """\
# lasso-rpc check-config accepts this file as it is (unset variables have defaults).
name: Mainnets
slug: default
routing:                          # defaults for every chain below
  default_strategy: fastest
  request_timeout_ms: 8000
  attempt_timeout_ms: 3000
  max_attempts: 3
  hedge:
    enabled: true
    after: p95
    max_extra: 1
    min_delay_ms: 20
    median_factor: 1.5
    budget_percent: 5                 # hedges: at most 5 % of reads ...
    min_per_second: 1                 # ... plus 1 per second
    budget_window_ms: 10000
  breaker:
    failure_threshold: 5
    rate_limit_threshold: 3
    recovery_ms: 1000                 # 1 s, 2 s, 4 s ... while it keeps failing
    max_recovery_ms: 60000
    jitter: 0.2
    half_open_successes: 2
    half_open_max_in_flight: 1
  ejection:
    enabled: true
    consecutive_slow: 5
    failure_rate: 0.5
    window_ms: 10000
    min_requests: 20
    latency_factor: 3
    latency_margin_ms: 100
    base_ms: 5000
    max_ms: 120000
    max_ejected_percent: 50
  max_lag_blocks: 8
  max_batch_size: 50
  max_body_bytes: 5242880
  max_response_bytes: 67108864
  head_poll_ms: 2000
  shaping:
    dedup: true
    dedup_exclude: ["eth_estimateGas"]
    monotonic_block_number: true
    archive_after_blocks: 128
    logs_max_block_range: 100000
    logs_split_concurrency: 4
cache:                             # the profile's response cache
  enabled: true
  max_bytes: 67108864
  head_check_ms: 250
  policies:
    - {methods: ["*"], finality: finalized}
    - {methods: ["*"], finality: unfinalized, ttl_ms: 60000}
    - {methods: ["*"], finality: realtime, ttl_ms: 2000}
chains:
  ethereum:
    chain_id: 1
    aliases: [eth, mainnet]
    block_time_ms: 12000
    finality_depth: 64            # only used when providers do not answer the finalized tag
    providers:
      - id: alchemy
        name: Alchemy
        url: https://eth-mainnet.g.alchemy.com/v2/${ALCHEMY_KEY:-demo}
        ws_url: wss://eth-mainnet.g.alchemy.com/v2/${ALCHEMY_KEY:-demo}
        priority: 1
        weight: 2
        timeout_ms: 5000
        pool_size: 64
        rate_limit_rps: 25
        rate_limit_burst: 50
        logs_max_block_range: 2000
        methods: {deny: ["trace_*", "debug_*"]}
        error_overrides: {-32000: client, "msg:capacity exceeded": rate_limited}
      - id: own-node
        url: http://127.0.0.1:8545
        priority: 2
        archive: true
        headers: {X-Node-Token: "${NODE_TOKEN:-}"}
        methods: {allow: ["eth_*", "net_*", "web3_*", "trace_*"]}
  base:
    chain_id: 8453
    block_time_ms: 2000
    routing:                      # this chain only; every other key comes from above
      default_strategy: priority
      max_lag_blocks: 30
      hedge: {after: 150}         # enabled, max_extra, min_delay_ms still from above
    providers:
      - id: public
        url: https://mainnet.base.org
server:                           # in one file only; read at start
  host: 127.0.0.1
  port: 4000
  log_level: info
  front: fast
  public_ws_base: wss://rpc.example.com
  rate_limit: {requests_per_second: 200, burst: 400}
  control:
    enabled: true
    token: ${LASSO_CONTROL_TOKEN:-change-me}
    allow_remote: false
  limits:                         # against slow, greedy and malformed clients (docs/hardening.md)
    max_header_bytes: 32768
    max_headers: 100
    header_timeout_s: 10
    body_timeout_s: 30
    idle_timeout_s: 75
    max_connections: 10000
    max_connections_per_ip: 256   # 0 behind a reverse proxy (every client has its address)
    max_pipelined: 16
    max_json_depth: 64
    ws_max_message_bytes: 1048576
    ws_max_subscriptions: 100
    ws_max_subscriptions_per_ip: 1000
    ws_max_messages_per_second: 200
    ws_message_burst: 400
state:                            # shared by every node with the same url and prefix
  backend: redis
  url: ${LASSO_REDIS_URL:-redis://127.0.0.1:6379/0}
  prefix: lasso
  timeout_ms: 25
  failure_threshold: 3
  retry_ms: 500
  sync_interval_ms: 1000
access:                           # API keys and client limits; off when absent
  keys:
    - key: ${ACME_KEY:-acme-key-change-me}
      name: acme
      profile: default
      rate_limit: {rps: 50, burst: 100}
      quota: {requests: 1000000, period: day}
      methods:
        - methods: [eth_getLogs, "trace_*"]
          rate_limit: {rps: 5}
          quota: {requests: 10000, period: 3600}
  per_ip: {rps: 20, burst: 40}
  anonymous: true
  redis_keys: false
  on_state_down: open
dashboard:                        # in one file only; loopback clients always get the page
  enabled: false
"""

#: Loaded by the generator: the "Errors" section shows what check-config really prints for it.
BAD_EXAMPLE = """\
name: Mainnets
slug: mainnets
routing: {default_strategy: fastestest}
chains:
  ethereum:
    chain_id: 1
    providers:
      - {id: alpha, urll: "https://eth.example/v2/${ALPHA_KEY}"}
      - {id: alpha, url: "https://eth.example/v2/${ALPHA_KEY}", weight: 0}
server: {port: 99999}
"""

PROLOGUE = f"""\
<!-- Generated: python -m lasso_rpc.config.reference > docs/config.md. Do not edit by hand. -->
# Configuration reference

This file is generated from the config models: the key tables below come from the fields of
`src/lasso_rpc/config/models.py` and `src/lasso_rpc/config/server.py` (each field's
`description` and `examples`), the prose from `src/lasso_rpc/config/reference_text.py`.
Regenerate it with

```bash
.venv/bin/python -m lasso_rpc.config.reference > docs/config.md
```

`tests/unit/test_config_reference.py` fails when this file differs from what the models say, when
a key has no description, or when an example here does not load. To add a key, add a field with
`Field(default=..., description=..., examples=[...])` to its model and regenerate; a new block is
a new model used as a field's type, and gets its own section.

- [Files and profiles](#files-and-profiles)
- [Environment variables](#environment-variables)
- [Routing defaults and chain overrides](#routing-defaults-and-chain-overrides)
- [Reload](#reload)
- [Errors](#errors)
- [A full example](#a-full-example)
- [Key reference](#key-reference)

## Files and profiles

A profile is one YAML file: a display `name`, a `slug`, routing defaults and its `chains`, each
with its providers. `lasso-rpc serve --config PATH` and `lasso-rpc check-config PATH` take a file
or a directory; a directory loads every `*.yaml` and `*.yml` file in it (sorted by name), one
profile each. Slugs must differ.

- `POST /rpc/<chain>` is served by the profile whose slug is `default`, else by the first file's.
- `POST /rpc/profile/<slug>/<chain>` (and `/rpc/profile/<slug>/fastest/<chain>`, ...) reaches
  any profile; `<chain>` is a chain's name, one of its `aliases` or its decimal `chain_id`.
- Profiles are separate: the same provider URL in two profiles is two providers, with their own
  breakers, latency figures and connection pools.

The `server` block is process-wide: it may appear in at most one file of the directory.

## Environment variables

Any string value may hold placeholders, replaced before validation:

| written | becomes |
|---|---|
| `${{NAME}}` | the value of `NAME`; unset: an error (`url: unresolved placeholder ${{NAME}}`) |
| `${{NAME:-default}}` | the value of `NAME`, or `default` when unset (`${{NAME:-}}`: empty) |

Substituted values are secrets from then on: log lines and upstream error texts (in client error
data and events) show `***` in their place, and provider URLs only ever appear as
`scheme://host/***`. Put API keys in the environment rather than in the file.

A value is substituted as text and then read as the key's type: `port: "${{PORT:-4000}}"` is the
number 4000. Quote a value that starts with a placeholder inside a `{{...}}` flow mapping (a bare
`${{` there is a YAML error).

## Routing defaults and chain overrides

The top-level `routing` block holds defaults for every chain of the profile. A chain's own
`routing` block overrides them key by key, and nested blocks (`hedge`, `breaker`) merge the same
way: a chain that says `routing: {{hedge: {{after: 150}}}}` keeps the profile's `hedge.enabled` and
`hedge.max_extra`. Both blocks take the same keys ([`routing`](#key-routing)). An error in the
profile's block is reported once, at `routing.<key>`; one in a chain's block at
`chains.<name>.routing.<key>`.

The strategy in the URL (`/rpc/fastest/<chain>`) wins over `default_strategy`.

## Reload

`kill -HUP <pid>` (with `--workers N`, the parent passes it to every worker) or
`POST /api/control/reload` (control API enabled) reads the same path again. A config that fails
validation is refused as a whole: the running one keeps serving, a `config.reloaded` event with
`ok: false` and the errors is published and logged at `error`, and the control API answers
`422 {{"error": "invalid configuration", "errors": [...]}}`. A valid one replaces every profile at
once: chains and providers start afresh (breakers closed, no latency history), requests already
running finish on the old ones. The `server` block is read at start only; changing it needs a
restart.

## Errors

An invalid config fails fast with every problem listed, each once, as `key.path: message` in the
order of the file (with several files, each line starts with the file name). For instance:

```text
$ lasso-rpc check-config mainnets.yaml
{{errors}}
```

YAML syntax errors and repeated keys name the file, line and column
(`mainnets.yaml:12:5: duplicate key 'url' (first at line 11; only one counts)`).

## A full example

Every key, most at their default value:

```yaml
{FULL_EXAMPLE}```
"""

EPILOGUE = ""
