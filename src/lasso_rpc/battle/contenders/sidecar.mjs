// Contender sidecar: client-side fallback with the real JS libraries (viem `fallback`, ethers v6
// `FallbackProvider`) driven open loop against the providers directly. Driven by sidecar.py.
//
// Protocol (newline-delimited JSON; every line on stdout is one JSON object with a "type"):
//   stdin  1: the spec {client, providers: [{id, url}], chain_id, requests: [{offset_s, method,
//             params}], timeout_ms, options}
//   stdout  : {"type":"ready", client, library, version, quorum, warmup}   (clients built)
//   stdin  2: {"type":"go", t0_s, now_s}  (t0_s: the schedule's zero on the driver's monotonic
//             clock; now_s: that clock when sent, to tell whether our clocks are the same)
//   stdout  : {"type":"started", clock, skew_ms}, then one {"type":"request", ...} per finished
//             request, then {"type":"summary", ...}, and the process exits 0.
//   stdin EOF or SIGTERM: stop sending, record unfinished requests as "cancelled", summary, exit.
// A bad spec or a library that fails to load ends with {"type":"fatal", error} and exit code 2.
// Times in records are seconds since t0; latency counts from the intended time (open loop).

import { AsyncLocalStorage } from "node:async_hooks";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import readline from "node:readline";

// Libraries may print (ethers logs network-detection retries with console.log): stdout is ours.
for (const name of ["log", "info", "warn", "debug"]) console[name] = console.error;

const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const monoS = () => Number(process.hrtime.bigint()) / 1e9; // CLOCK_MONOTONIC, as Python's
const context = new AsyncLocalStorage();
let urlMasks = []; // [url, id]: provider URLs carry API keys; messages name the id instead

function modulesArg() {
  const i = process.argv.indexOf("--modules");
  return i > 0 ? process.argv[i + 1] : null;
}

function loadLibrary(name) {
  // From the node_modules the driver found (any install layout), else beside this file.
  const dir = modulesArg();
  const req = createRequire(dir ? path.join(path.resolve(dir), "..", "noop.js") : import.meta.url);
  const lib = req(name);
  return { lib, version: packageVersion(req.resolve(name), name) };
}

function packageVersion(entry, name) {
  // Not every package exports its package.json (ethers does not): walk up from its entry.
  for (let dir = path.dirname(entry); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const file = path.join(dir, "package.json");
    if (!fs.existsSync(file)) continue;
    const pkg = JSON.parse(fs.readFileSync(file, "utf8"));
    if (pkg.name === name) return pkg.version;
  }
  return null;
}

function mask(text) {
  let s = String(text ?? "");
  for (const [url, id] of urlMasks) s = s.split(url).join(`<${id}>`);
  s = s.replace(/\b(?:https?|wss?):\/\/[^\s"'<>]+/g, "<url>");
  return s.length > 240 ? s.slice(0, 237) + "..." : s;
}

function rootCause(err) {
  let e = err;
  for (let depth = 0; depth < 8 && e && e.cause && typeof e.cause === "object"; depth++) {
    e = e.cause;
  }
  return e;
}

function describeError(err, lib) {
  // error_class: the library's own vocabulary (viem class name, ethers error code).
  const root = rootCause(err);
  // ECONNREFUSED, ...; ethers keeps a backend's error it failed to read as a number in `value`.
  const sysCode = [root?.code, err?.value?.code].find((c) => typeof c === "string" && c !== err?.code) ?? null;
  let cls;
  let rpcCode = null;
  if (lib === "ethers") {
    cls = typeof err?.code === "string" ? err.code : err?.name || "Error";
    const inner = err?.error ?? err?.info?.error;
    if (inner && typeof inner.code === "number") rpcCode = inner.code;
  } else {
    cls = err?.name || "Error";
    if (typeof err?.code === "number" && err.code !== -1) rpcCode = err.code;
  }
  const base = err?.shortMessage || err?.message || String(err);
  const message = sysCode && !base.includes(sysCode) ? `${base} (${sysCode})` : base;
  return { error_class: cls, error: mask(message), rpc_code: rpcCode };
}

// -- clients ------------------------------------------------------------------------------

function buildViem(spec) {
  const { lib, version } = loadLibrary("viem");
  const o = spec.options ?? {};
  const httpOpts = {};
  if (o.transport_timeout_ms != null) httpOpts.timeout = o.transport_timeout_ms;
  const fbOpts = { rank: o.rank ?? false };
  if (o.retry_count != null) fbOpts.retryCount = o.retry_count;
  if (o.retry_delay_ms != null) fbOpts.retryDelay = o.retry_delay_ms;
  const transports = spec.providers.map((p) => lib.http(p.url, httpOpts));
  const client = lib.createPublicClient({ transport: lib.fallback(transports, fbOpts) });
  const idByUrl = new Map(spec.providers.map((p) => [p.url, p.id]));
  // Called inside the request's async context: attribute each attempt to its request.
  client.transport.onResponse(({ status, transport }) => {
    const ctx = context.getStore();
    if (!ctx) return;
    const id = idByUrl.get(transport?.value?.url) ?? null;
    ctx.attempts.push(id);
    if (status === "success") ctx.provider = id;
  });
  return {
    library: "viem",
    version,
    quorum: null,
    call: (method, params) => client.request({ method, params }),
  };
}

const ETHERS_CALLS = {
  // FallbackProvider has no raw `send`: each JSON-RPC method maps to its typed call.
  eth_blockNumber: (p) => p.getBlockNumber(),
  eth_chainId: async (p) => (await p.getNetwork()).chainId,
  eth_getBalance: (p, [a, tag]) => p.getBalance(a, tag),
  eth_getTransactionCount: (p, [a, tag]) => p.getTransactionCount(a, tag),
  eth_getCode: (p, [a, tag]) => p.getCode(a, tag),
  eth_getStorageAt: (p, [a, pos, tag]) => p.getStorage(a, pos, tag),
  eth_call: (p, [tx, tag]) => p.call({ ...tx, blockTag: tag }),
  eth_estimateGas: (p, [tx]) => p.estimateGas(tx),
  eth_getBlockByNumber: (p, [tag, full]) => p.getBlock(tag, Boolean(full)),
  eth_getBlockByHash: (p, [hash, full]) => p.getBlock(hash, Boolean(full)),
  eth_getLogs: (p, [filter]) => p.getLogs(filter),
  eth_gasPrice: async (p) => (await p.getFeeData()).gasPrice,
  eth_maxPriorityFeePerGas: async (p) => (await p.getFeeData()).maxPriorityFeePerGas,
  eth_getTransactionByHash: (p, [hash]) => p.getTransaction(hash),
  eth_getTransactionReceipt: (p, [hash]) => p.getTransactionReceipt(hash),
  eth_sendRawTransaction: (p, [raw]) => p.broadcastTransaction(raw),
};

class UnsupportedMethod extends Error {
  name = "UnsupportedMethod";
}

function buildEthers(spec) {
  const { lib, version } = loadLibrary("ethers");
  const o = spec.options ?? {};
  const network = lib.Network.from(spec.chain_id);
  const rpcOpts = {};
  for (const k of ["staticNetwork", "batchMaxCount", "batchStallTime", "cacheTimeout"]) {
    if (o[`rpc_${k}`] != null) rpcOpts[k] = o[`rpc_${k}`];
  }
  if (rpcOpts.staticNetwork === true) rpcOpts.staticNetwork = network;
  const configs = spec.providers.map((p) => {
    const req = new lib.FetchRequest(p.url);
    if (o.transport_timeout_ms != null) req.timeout = o.transport_timeout_ms;
    const config = { provider: new lib.JsonRpcProvider(req, network, rpcOpts) };
    if (o.stall_timeout_ms != null) config.stallTimeout = o.stall_timeout_ms;
    return config;
  });
  const fbOpts = {};
  if (o.quorum != null) fbOpts.quorum = o.quorum;
  if (o.cache_timeout_ms != null) fbOpts.cacheTimeout = o.cache_timeout_ms;
  const provider = new lib.FallbackProvider(configs, network, fbOpts);
  provider.on("error", () => {}); // an emitted "error" must never end the process
  return {
    library: "ethers",
    version,
    quorum: provider.quorum,
    call: async (method, params) => {
      const fn = ETHERS_CALLS[method];
      if (!fn) throw new UnsupportedMethod(`FallbackProvider has no call for ${method}`);
      return await fn(provider, params ?? []);
    },
  };
}

// -- the run ------------------------------------------------------------------------------

function validate(spec) {
  if (!spec || typeof spec !== "object") throw new Error("spec must be a JSON object");
  if (!["viem", "ethers"].includes(spec.client)) throw new Error(`unknown client ${spec.client}`);
  if (!Array.isArray(spec.providers) || spec.providers.length === 0) {
    throw new Error("providers must be a non-empty list of {id, url}");
  }
  if (!Array.isArray(spec.requests)) throw new Error("requests must be a list");
  let last = 0;
  for (const r of spec.requests) {
    if (typeof r.offset_s !== "number" || r.offset_s < last || typeof r.method !== "string") {
      throw new Error("requests need non-decreasing offset_s and a method");
    }
    last = r.offset_s;
  }
  if (!(spec.timeout_ms > 0)) throw new Error("timeout_ms must be > 0");
}

function withDeadline(promise, ms) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => {
      const e = new Error(`no answer within ${ms} ms`);
      e.name = "timeout";
      reject(e);
    }, ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

class Run {
  constructor(spec, client) {
    this.spec = spec;
    this.client = client;
    this.inFlight = new Map(); // i -> {method, intended_s, start_s, ctx}
    this.counts = { sent: 0, ok: 0, errors: 0, cancelled: 0 };
    this.maxLagMs = 0;
    this.stopped = false;
    this.timer = null;
    this.next = 0;
  }

  now() {
    return monoS() - this.t0;
  }

  start(t0) {
    this.t0 = t0;
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    this.dispatch();
    return this.done;
  }

  dispatch() {
    this.timer = null;
    const reqs = this.spec.requests;
    while (!this.stopped && this.next < reqs.length) {
      const r = reqs[this.next];
      const wait = r.offset_s - this.now();
      if (wait > 0) {
        this.timer = setTimeout(() => this.dispatch(), Math.ceil(wait * 1000));
        return;
      }
      this.send(this.next, r);
      this.next++;
    }
    this.checkDone();
  }

  send(i, r) {
    const start = this.now();
    this.maxLagMs = Math.max(this.maxLagMs, (start - r.offset_s) * 1000);
    const ctx = { attempts: [], provider: null };
    const entry = { method: r.method, intended_s: r.offset_s, start_s: start, ctx };
    this.inFlight.set(i, entry);
    this.counts.sent++;
    const lib = this.client.library;
    const call = async () => await this.client.call(r.method, r.params ?? []); // throws reject
    context.run(ctx, () => withDeadline(call(), this.spec.timeout_ms))
      .then(
        () => this.finish(i, { ok: true, error_class: null, error: null, rpc_code: null }),
        (err) => this.finish(i, { ok: false, ...(err?.name === "timeout"
          ? { error_class: "timeout", error: mask(err.message), rpc_code: null }
          : describeError(err, lib)) }),
      )
      .catch((err) => console.error("sidecar: record failed", err));
  }

  finish(i, outcome) {
    const entry = this.inFlight.get(i);
    if (!entry) return; // already recorded as cancelled
    this.inFlight.delete(i);
    this.counts[outcome.ok ? "ok" : "errors"]++;
    this.emit(i, entry, this.now(), outcome);
    this.checkDone();
  }

  emit(i, entry, end, outcome) {
    const { ctx } = entry;
    out({
      type: "request", i, method: entry.method, intended_s: entry.intended_s,
      start_s: entry.start_s, end_s: end, ok: outcome.ok, error_class: outcome.error_class,
      error: outcome.error, rpc_code: outcome.rpc_code, provider: ctx.provider,
      attempts: this.client.library === "viem" ? ctx.attempts.length : null,
    });
  }

  stop() {
    if (this.stopped || !this.done) return;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    const end = this.now();
    for (const [i, entry] of this.inFlight) {
      this.counts.cancelled++;
      this.emit(i, entry, end, { ok: false, error_class: "cancelled", error: null, rpc_code: null });
    }
    this.inFlight.clear();
    this.checkDone();
  }

  checkDone() {
    const finished = this.stopped || this.next >= this.spec.requests.length;
    if (finished && this.inFlight.size === 0 && this.resolveDone) {
      this.resolveDone();
      this.resolveDone = null;
    }
  }

  summary() {
    return {
      type: "summary", ...this.counts, scheduled: this.spec.requests.length,
      unsent: this.spec.requests.length - this.counts.sent, stopped_early: this.stopped,
      max_send_lag_ms: this.maxLagMs, elapsed_s: this.now(),
    };
  }
}

function exit(code) {
  // Let stdout drain before leaving (a pipe may be asynchronous).
  process.stdout.write("", () => process.exit(code));
}

async function main() {
  process.on("uncaughtException", (err) => console.error("sidecar: uncaught", err));
  process.on("unhandledRejection", (err) => console.error("sidecar: unhandled rejection", err));
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  const input = lines[Symbol.asyncIterator]();
  let run = null;
  process.on("SIGTERM", () => (run?.done ? run.stop() : exit(0)));

  const first = await input.next();
  if (first.done) return exit(0);
  let spec;
  let client;
  try {
    spec = JSON.parse(first.value);
    validate(spec);
    urlMasks = spec.providers.filter((p) => p.url).map((p) => [p.url, p.id]);
    client = spec.client === "viem" ? buildViem(spec) : buildEthers(spec);
  } catch (err) {
    out({ type: "fatal", error: mask(err?.stack || err) });
    return exit(2);
  }
  let warmup = null;
  if (spec.options?.warmup !== false) {
    // A running app has talked to its providers before; ethers syncs every backend on first use.
    try {
      await withDeadline(client.call("eth_blockNumber", []), spec.timeout_ms);
      warmup = "ok";
    } catch (err) {
      warmup = describeError(err, client.library).error;
    }
  }
  out({
    type: "ready", client: spec.client, library: client.library, version: client.version,
    quorum: client.quorum, warmup,
  });
  run = new Run(spec, client);

  const go = await input.next();
  if (go.done) return exit(0);
  let t0;
  let clock;
  try {
    const msg = JSON.parse(go.value);
    const mine = monoS();
    // Same CLOCK_MONOTONIC (Linux): take t0 as is; otherwise map it through the send time.
    const shared = typeof msg.now_s === "number" && Math.abs(mine - msg.now_s) < 0.5;
    clock = shared ? "shared" : "local";
    t0 = shared ? msg.t0_s : mine - ((msg.now_s ?? mine) - (msg.t0_s ?? msg.now_s ?? mine));
  } catch (err) {
    out({ type: "fatal", error: mask(`bad go line: ${err}`) });
    return exit(2);
  }
  const done = run.start(t0);
  out({ type: "started", clock, skew_ms: (monoS() - t0) * 1000 });
  (async () => {
    for await (const _ of input); // anything after "go" is ignored; EOF means stop
    run.stop();
  })().catch(() => run.stop());
  await done;
  out(run.summary());
  exit(0);
}

main().catch((err) => {
  out({ type: "fatal", error: mask(err?.stack || err) });
  exit(2);
});
