// lasso-rpc live dashboard: plain JavaScript and SVG, no library, nothing fetched from elsewhere.
// Data: api/chains and api/providers (polled), api/events (Server-Sent Events: stats.summary a
// few times a second, state changes as they happen). Summaries carry a node id; several
// workers or nodes are added up. Untrusted strings (method names come from clients) are only
// ever set as textContent.
"use strict";
(() => {
  const TYPES = ["stats.summary", "breaker.changed", "provider.health", "subscription.failover",
    "config.reloaded", "chaos.injected", "chaos.reverted"];
  const params = new URLSearchParams(location.search);
  const WINDOW_S = Number(params.get("window_s")) || 300;
  const POLL_MS = Number(params.get("poll_ms")) || 2000;
  const NODE_FRESH_S = 2.5;
  const MAX_POINTS = 36000;
  const S = {
    battle: params.has("battle"),
    chains: new Map(), providers: new Map(), nodes: new Map(), subs: new Map(),
    points: [], marks: [], openChaos: new Map(), decisions: [], events: [],
    expanded: new Set(), t0: Number(params.get("t0")) || null, now: null, lastSummaryAt: 0,
    connected: false,
  };

  // -- helpers ----------------------------------------------------------------------------
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "title") e.title = String(v);
      else e.setAttribute(k, String(v));
    }
    for (const kid of kids) {
      if (kid === null || kid === undefined) continue;
      e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return e;
  }
  const SVG = "http://www.w3.org/2000/svg";
  function sv(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }
  const fmt = (v, d = 1) => (v === null || v === undefined || Number.isNaN(v)) ? "–"
    : Number(v).toLocaleString("en-US", {maximumFractionDigits: d, minimumFractionDigits: 0});
  const pct = (v) => (v === null || v === undefined) ? "–" : (100 * v).toFixed(v >= 0.9995 ? 0 : 1) + "%";
  const clock = (ts) => new Date(ts * 1000).toLocaleTimeString("en-GB", {hour12: false});
  const pkey = (profile, chain, id) => `${profile}/${chain}/${id}`;
  async function getJSON(url) {
    const r = await fetch(url, {cache: "no-store"});
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
    return r.json();
  }
  function provider(profile, chain, id) {
    const k = pkey(profile, chain, id);
    let p = S.providers.get(k);
    if (!p) {
      p = {key: k, profile, chain, id, name: id, api: null, digests: new Map(), breaker: "closed",
        cordoned: false, usable: null, health: "", head: null, lag: null, stateTs: 0, eventAt: 0};
      S.providers.set(k, p);
    }
    return p;
  }
  function providersNamed(chain, id) {
    return [...S.providers.values()].filter((p) => p.chain === chain && p.id === id);
  }
  function freshNodes() {
    const out = [];
    for (const n of S.nodes.values()) if (S.now === null || S.now - n.s.ts <= NODE_FRESH_S) out.push(n.s);
    return out;
  }

  // -- polled state -------------------------------------------------------------------------
  async function loadChains() {
    const data = await getJSON("api/chains");
    for (const c of data.chains) {
      const k = `${c.profile}/${c.name}`;
      const old = S.chains.get(k) || {};
      S.chains.set(k, {...old, key: k, profile: c.profile, name: c.name, chain_id: c.chain_id,
        aliases: c.aliases || [], strategy: c.default_strategy,
        head: old.head ?? c.consensus_head});
      for (const id of c.providers) provider(c.profile, c.name, id);
    }
  }
  async function loadProviders() {
    const sentAt = Date.now();
    const data = await getJSON("api/providers");
    for (const row of data.providers) {
      const p = provider(row.profile, row.chain, row.id);
      p.api = row;
      p.name = row.name || row.id;
      if (sentAt >= p.eventAt) {  // an event newer than this answer wins
        p.breaker = row.breaker.state;
        p.cordoned = row.cordoned;
        if (row.usable !== undefined) p.usable = row.usable;
        if (row.health !== undefined) p.health = row.health;
        p.head = row.head; p.lag = row.lag;
      }
    }
    schedule();
  }
  async function poll() {
    try { await loadProviders(); } catch (e) { /* the stream status says what is wrong */ }
    setTimeout(poll, POLL_MS);
  }

  // -- the event stream -------------------------------------------------------------------
  function seen(ts) {
    if (S.now === null || ts > S.now) S.now = ts;
    if (S.t0 === null) S.t0 = ts;
  }
  function logEvent(ts, cls, text) {
    S.events.unshift({ts, cls, text});
    if (S.events.length > 150) S.events.length = 150;
  }
  function onSummary(s) {
    seen(s.ts);
    S.lastSummaryAt = Date.now();
    S.nodes.set(s.node, {s});
    S.subs.set(s.node, s.subscriptions || []);
    for (const d of s.providers) {
      const p = provider(d.profile, d.chain, d.provider);
      p.digests.set(s.node, {d, interval: s.interval_s, ts: s.ts});
      if (s.ts >= p.stateTs) {
        p.stateTs = s.ts;
        p.breaker = d.breaker; p.cordoned = d.cordoned; p.usable = d.usable; p.health = d.health;
        p.head = d.head; p.lag = d.lag;
      }
    }
    for (const c of s.chains) {
      const k = `${c.profile}/${c.chain}`;
      const chain = S.chains.get(k) || {key: k, profile: c.profile, name: c.chain, aliases: []};
      chain.head = Math.max(chain.head ?? 0, c.head ?? 0) || c.head;
      chain.ready = c.ready;
      S.chains.set(k, chain);
    }
    for (const d of s.decisions) {
      S.decisions.unshift(d);
      if (d.failover) S.marks.push({t: d.ts, kind: "fo", label: `${d.method} failover`});
    }
    if (S.decisions.length > 120) S.decisions.length = 120;
    // One timeline point per tick of the first node; every fresh node's latest counts add up.
    const first = S.nodes.keys().next().value;
    if (s.node === first) {
      let rps = 0, eps = 0, p95 = null;
      for (const n of freshNodes()) {
        for (const c of n.chains) {
          rps += c.requests / n.interval_s;
          eps += c.errors / n.interval_s;
          if (c.p95_ms !== null) p95 = Math.max(p95 ?? 0, c.p95_ms);
        }
      }
      S.points.push({t: s.ts, rps, eps, p95});
      if (S.points.length > MAX_POINTS) S.points.splice(0, S.points.length - MAX_POINTS);
    }
    schedule();
  }
  function onEvent(type, d) {
    if (type === "stats.summary") return onSummary(d);
    seen(d.ts);
    if (type === "breaker.changed") {
      for (const p of providersNamed(d.chain, d.provider)) {
        p.breaker = d.to_state; p.stateTs = d.ts; p.eventAt = Date.now();
      }
      const cls = d.to_state === "open" ? "err" : d.to_state === "closed" ? "ok" : "fo";
      logEvent(d.ts, cls, `breaker ${d.chain}/${d.provider}: ${d.from_state} → ${d.to_state} (${d.reason})`);
      if (d.to_state === "open") S.marks.push({t: d.ts, kind: "brk", label: d.provider});
    } else if (type === "provider.health") {
      let cordonChanged = false;
      for (const p of providersNamed(d.chain, d.provider)) {
        cordonChanged = cordonChanged || p.cordoned !== d.cordoned;
        p.head = d.head; p.lag = d.lag; p.cordoned = d.cordoned; p.eventAt = Date.now();
      }
      // Lag moves with every block (it is in the table); a cordon is worth a line.
      if (cordonChanged) logEvent(d.ts, "fo", `${d.chain}/${d.provider} ${d.cordoned ? "cordoned" : "uncordoned"}`);
    } else if (type === "subscription.failover") {
      const what = d.reorg ? "reorg" : d.from_provider === d.to_provider ? "gap repaired" : "failover";
      logEvent(d.ts, d.gap ? "err" : "fo", `subscription ${d.chain} ${d.subscription}: ${what} ` +
        `${d.from_provider ?? "–"} → ${d.to_provider ?? "–"}, back-filled ${d.backfilled}` +
        (d.gap ? ", GAP" : ""));
      S.marks.push({t: d.ts, kind: "fo", label: `sub ${what}`});
    } else if (type === "config.reloaded") {
      logEvent(d.ts, d.ok ? "ok" : "err", d.ok ? `config reloaded (${d.source})`
        : `config reload rejected (${d.source}): ${(d.errors || []).join("; ")}`);
      if (d.ok) loadChains().then(loadProviders).catch(() => {});
    } else if (type === "chaos.injected" || type === "chaos.reverted") {
      S.battle = true;
      const label = `${d.action}${d.target ? " " + d.target : ""}`;
      const k = `${d.action}|${d.target}`;
      if (type === "chaos.injected") {
        const m = {t: d.ts, end: null, kind: "chaos", label};
        S.marks.push(m); S.openChaos.set(k, m);
      } else {
        const m = S.openChaos.get(k);
        if (m) { m.end = d.ts; S.openChaos.delete(k); }
        else S.marks.push({t: d.ts, end: d.ts, kind: "chaos", label});
      }
      logEvent(d.ts, "fo", `chaos ${type === "chaos.injected" ? "injected" : "reverted"}: ${label}`);
    }
    schedule();
  }
  function connect() {
    const es = new EventSource("api/events?types=" + TYPES.join(","));
    es.onopen = () => { S.connected = true; status(); };
    es.onerror = () => { S.connected = false; status(); };
    for (const t of TYPES) {
      es.addEventListener(t, (m) => {
        try { onEvent(t, JSON.parse(m.data)); } catch (e) { console.error(e); }
      });
    }
  }
  function status() {
    const e = document.getElementById("status");
    let state = S.connected ? "live" : (S.lastSummaryAt ? "disconnected" : "connecting");
    if (state === "live" && S.lastSummaryAt && Date.now() - S.lastSummaryAt > 3000) state = "stalled";
    e.dataset.state = state;
    e.className = "status " + (state === "live" ? "live" : state === "connecting" ? "connecting" : "disconnected");
    e.textContent = state === "disconnected" ? "disconnected (last data kept)" : state;
    const nodes = freshNodes().length;
    document.getElementById("nodes").textContent = nodes > 1 ? `${nodes} router processes` : "";
    document.getElementById("mode").textContent = S.battle ? "battle: whole run" : `last ${WINDOW_S} s`;
  }

  // -- rendering ----------------------------------------------------------------------------
  let pending = null;
  function schedule() { if (pending === null) pending = setTimeout(render, 100); }
  function render() {
    pending = null;
    status();
    renderChains(); renderProviders(); renderTimeline(); renderStreams(); renderSubs();
  }
  function chainTotals(key) {
    const t = {rps: 0, eps: 0, fo: 0, hedged: 0, p50: null, p95: null, cache: {}};
    for (const n of freshNodes()) {
      for (const c of n.chains) {
        if (`${c.profile}/${c.chain}` !== key) continue;
        t.rps += c.requests / n.interval_s; t.eps += c.errors / n.interval_s;
        t.fo += c.failovers / n.interval_s; t.hedged += c.hedged / n.interval_s;
        if (c.p50_ms !== null) t.p50 = Math.max(t.p50 ?? 0, c.p50_ms);
        if (c.p95_ms !== null) t.p95 = Math.max(t.p95 ?? 0, c.p95_ms);
        for (const [k, v] of Object.entries(c.cache || {})) t.cache[k] = (t.cache[k] || 0) + v / n.interval_s;
      }
    }
    return t;
  }
  function figure(label, value) { return el("div", {}, el("b", {}, value), el("span", {}, label)); }
  function renderChains() {
    const box = document.getElementById("chains");
    box.replaceChildren();
    for (const c of [...S.chains.values()].sort((a, b) => a.key.localeCompare(b.key))) {
      const t = chainTotals(c.key);
      const figs = [
        figure("head", fmt(c.head, 0)), figure("requests/s", fmt(t.rps)),
        figure("errors", t.rps ? pct(t.eps / t.rps) : "–"),
        figure("p50 / p95 ms", `${fmt(t.p50)} / ${fmt(t.p95)}`),
        figure("failovers/s", fmt(t.fo)), figure("hedged/s", fmt(t.hedged)),
      ];
      const cacheTotal = Object.values(t.cache).reduce((a, b) => a + b, 0);
      if (cacheTotal > 0) figs.push(figure("cache hits", pct((t.cache.HIT || 0) / cacheTotal)));
      const ready = c.ready === undefined ? null : c.ready;
      box.append(el("div", {class: "card chain-card", "data-chain": c.key},
        el("h3", {}, c.name, " ", el("span", {class: "muted"},
          `${c.profile}${c.chain_id ? " · id " + c.chain_id : ""}${c.strategy ? " · " + c.strategy : ""}`),
          " ", ready === null ? "" : el("span", {class: ready ? "ready" : "notready"}, ready ? "ready" : "NOT READY")),
        el("div", {class: "figures"}, ...figs)));
    }
  }
  function rates(p) {
    const r = {attempts: 0, faults: 0, hedges: 0, inflight: 0, any: false};
    for (const [node, x] of p.digests) {
      if (!S.nodes.has(node) || (S.now !== null && S.now - x.ts > NODE_FRESH_S)) continue;
      r.any = true;
      r.attempts += x.d.attempts / x.interval; r.faults += x.d.failures / x.interval;
      r.hedges += (x.d.hedges || 0) / x.interval; r.inflight += x.d.in_flight;
    }
    if (!r.any && p.api) r.inflight = p.api.in_flight;
    return r;
  }
  function badges(p) {
    const out = [el("span", {class: `badge b-${p.breaker} breaker`}, p.breaker.replace("_", "-"))];
    if (p.cordoned) out.push(el("span", {class: "badge b-cordoned"}, "cordoned"));
    const ej = p.api && (p.api.ejected === true || (p.api.ejection && (p.api.ejection.ejected || p.api.ejection.state === "ejected")));
    if (ej) out.push(el("span", {class: "badge b-ejected"}, "ejected"));
    if (p.usable === false && p.breaker !== "open" && !p.cordoned) out.push(el("span", {class: "badge b-unusable"}, "unusable"));
    return out;
  }
  function renderProviders() {
    const body = document.querySelector("#providers tbody");
    body.replaceChildren();
    const rows = [...S.providers.values()].sort((a, b) => a.key.localeCompare(b.key));
    for (const p of rows) {
      const r = rates(p);
      const all = p.api && p.api.stats && p.api.stats.http ? p.api.stats.http.all : null;
      const tr = el("tr", {class: "provider", "data-provider": p.id, "data-key": p.key,
        "data-breaker": p.breaker, "data-usable": p.usable},
        el("td", {}, p.chain), el("td", {title: p.api ? p.api.url : ""}, p.name),
        el("td", {}, ...badges(p)),
        el("td", {class: "num"}, fmt(p.head, 0)), el("td", {class: "num"}, fmt(p.lag, 0)),
        el("td", {class: "num"}, fmt(r.inflight, 0)), el("td", {class: "num"}, fmt(r.attempts)),
        el("td", {class: "num"}, fmt(r.faults)), el("td", {class: "num"}, fmt(r.hedges)),
        el("td", {class: "num"}, all ? pct(all.success_rate) : "–"),
        el("td", {class: "num"}, all ? fmt(all.p50) : "–"), el("td", {class: "num"}, all ? fmt(all.p95) : "–"),
        el("td", {class: "health", title: p.health}, p.health));
      tr.addEventListener("click", () => {
        if (S.expanded.has(p.key)) S.expanded.delete(p.key); else S.expanded.add(p.key);
        render();
      });
      body.append(tr);
      if (S.expanded.has(p.key)) body.append(methodRows(p));
    }
  }
  function methodRows(p) {
    const t = el("table", {}, el("tr", {}, ...["transport", "method", "samples", "success", "p50 ms", "p95 ms", "ewma ms"]
      .map((h) => el("th", {}, h))));
    const stats = (p.api && p.api.stats) || {};
    for (const [tr, table] of Object.entries(stats)) {
      for (const [m, s] of Object.entries(table.methods || {}).sort()) {
        t.append(el("tr", {"data-method": m}, el("td", {}, tr), el("td", {}, m), el("td", {class: "num"}, fmt(s.samples, 0)),
          el("td", {class: "num"}, pct(s.success_rate)), el("td", {class: "num"}, fmt(s.p50)),
          el("td", {class: "num"}, fmt(s.p95)), el("td", {class: "num"}, fmt(s.ewma))));
      }
    }
    return el("tr", {class: "methods"}, el("td", {colspan: 13}, t));
  }
  function attemptSpan(a) {
    const [prov, outcome, ms] = a;
    const cls = outcome === "ok" ? "att-ok" : (outcome === "client_error" || outcome === "cancelled") ? "att-other" : "att-bad";
    return el("span", {class: cls}, `${prov} ${outcome} ${fmt(ms)}ms`);
  }
  function renderStreams() {
    const list = document.getElementById("decisions");
    list.replaceChildren();
    for (const d of S.decisions.slice(0, 80)) {
      const atts = [];
      d.attempts.forEach((a, i) => { if (i) atts.push(" → "); atts.push(attemptSpan(a)); });
      const tag = d.failover ? el("span", {class: "fo"}, "FAILOVER ") : d.status === "error" ? el("span", {class: "err"}, "ERROR ") : "";
      list.append(el("li", {class: d.failover ? "decision failover" : "decision"},
        el("span", {class: "t"}, clock(d.ts)), tag,
        d.attempts.length === 0 && d.status !== "error"
          ? `${d.chain} ${d.method}: answered by the router itself`
          : `${d.chain} ${d.method} via ${d.strategy}: ${d.provider ?? "none"} in ${fmt(d.latency_ms)} ms`,
        d.hedged ? " (hedged)" : "", ...(atts.length ? [" [", ...atts, "]"] : []),
        d.explanation ? el("span", {class: "why"}, d.explanation) : null));
    }
    const ev = document.getElementById("events");
    ev.replaceChildren();
    for (const e of S.events.slice(0, 100)) {
      ev.append(el("li", {}, el("span", {class: "t"}, clock(e.ts)), el("span", {class: e.cls}, e.text)));
    }
  }
  function renderSubs() {
    const body = document.querySelector("#subscriptions tbody");
    body.replaceChildren();
    const all = [];
    for (const [node, subs] of S.subs) if (S.nodes.has(node)) all.push(...subs);
    if (!all.length) {
      body.append(el("tr", {}, el("td", {colspan: 11, class: "muted"}, "no WebSocket subscriptions")));
      return;
    }
    for (const s of all) {
      body.append(el("tr", {}, el("td", {}, s.key), el("td", {}, s.chain), el("td", {}, s.provider ?? "–"),
        el("td", {}, s.state), ...[s.clients, s.last_number, s.delivered, s.backfilled, s.gaps, s.reorgs, s.failovers]
          .map((v) => el("td", {class: "num"}, fmt(v, 0)))));
    }
  }
  function renderTimeline() {
    const svg = document.getElementById("timeline");
    svg.replaceChildren();
    const W = 1200, H = 300, L = 50, R = 55, T = 26, B = 22;
    if (S.now === null) {
      svg.append(sv("text", {x: W / 2, y: H / 2, "text-anchor": "middle"}, "waiting for the first summary…"));
      return;
    }
    const x1 = S.now, x0 = Math.min(x1 - 10, S.battle ? S.t0 : Math.max(S.t0, x1 - WINDOW_S));
    const pts = S.points.filter((p) => p.t >= x0);
    const yMax = Math.max(1, ...pts.map((p) => p.rps)) * 1.1;
    const pMax = Math.max(1, ...pts.map((p) => p.p95 ?? 0)) * 1.1;
    const X = (t) => L + (W - L - R) * (t - x0) / Math.max(1e-9, x1 - x0);
    const Y = (v) => H - B - (H - T - B) * v / yMax;
    const P = (v) => H - B - (H - T - B) * v / pMax;
    for (let i = 0; i <= 4; i++) {
      const y = T + (H - T - B) * i / 4;
      svg.append(sv("line", {x1: L, x2: W - R, y1: y, y2: y, class: "grid"}));
      svg.append(sv("text", {x: L - 6, y: y + 4, "text-anchor": "end"}, fmt(yMax * (1 - i / 4), 0)));
      svg.append(sv("text", {x: W - R + 6, y: y + 4}, fmt(pMax * (1 - i / 4), 0)));
    }
    const span = x1 - x0;
    const step = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600].find((s) => span / s <= 10) || 7200;
    for (let t = Math.ceil(x0 / step) * step; t <= x1; t += step) {
      svg.append(sv("text", {x: X(t), y: H - 6, "text-anchor": "middle"},
        S.battle ? `${fmt(t - S.t0, 0)} s` : clock(t)));
    }
    for (const m of S.marks) {
      const end = m.end ?? (m.kind === "chaos" ? x1 : m.t);
      if (end < x0 || m.t > x1) continue;
      if (m.kind === "chaos") {
        const a = X(Math.max(m.t, x0)), b = X(Math.min(end, x1));
        svg.append(sv("rect", {x: a, y: T, width: Math.max(2, b - a), height: H - T - B, class: "chaos"}));
        svg.append(sv("line", {x1: a, x2: a, y1: T, y2: H - B, class: "chaos-line"}));
        svg.append(sv("text", {x: a + 3, y: T - 14, class: "label"}, m.label));
      } else if (m.kind === "brk") {
        svg.append(sv("line", {x1: X(m.t), x2: X(m.t), y1: T, y2: H - B, class: "brk"}));
        svg.append(sv("text", {x: X(m.t) + 3, y: T - 3, class: "brk-label"}, `${m.label} open`));
      } else if (m.kind === "fo") {
        svg.append(sv("line", {x1: X(m.t), x2: X(m.t), y1: H - B - 8, y2: H - B, class: "fo"}));
      }
    }
    const line = (f, scale, cls) => {
      const d = pts.filter((p) => f(p) !== null).map((p, i) => `${i ? "L" : "M"}${X(p.t).toFixed(1)},${scale(f(p)).toFixed(1)}`).join("");
      if (d) svg.append(sv("path", {d, class: cls}));
    };
    line((p) => p.rps, Y, "rps");
    line((p) => p.eps, Y, "err");
    line((p) => p.p95, P, "p95");
    svg.append(sv("line", {x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis"}));
    document.getElementById("timeline-note").textContent = S.battle
      ? (params.get("t0") ? "seconds since the battle's router started" : "seconds since the page saw the first event")
        + "; shaded: chaos windows" : "";
  }

  // -- start --------------------------------------------------------------------------------
  // For the console and tests: what the page knows, and how it takes an event.
  window.lassoDashboard = {state: S, onEvent};
  setInterval(status, 1000);
  connect();
  loadChains().then(loadProviders).catch((e) => console.error(e)).finally(() => {
    render();
    setTimeout(poll, POLL_MS);
  });
})();
