// AIPX operator console: applies the server's snapshot/delta events to a model and renders changed parts
// once per animation frame (hundreds of instruments update in place without re-building the page).
"use strict";

const OPEN = new Set(["PENDING_NEW", "ACCEPTED", "PARTIALLY_FILLED", "PENDING_CANCEL"]);
const MAX_ORDERS_SHOWN = 300;
const MAX_ITEMS = 200;

const model = {
  markets: new Map(), orders: new Map(), positions: new Map(), accounts: new Map(), components: new Map(),
  signals: [], decisions: [], fills: [], figures: {}, dlq: {}, lag: {}, ages: {}, staleAfter: 15,
};
const dirty = new Set();
let selected = null;
let frame = 0;
let token = sessionStorage.getItem("aipx-admin-token") || "";

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k.startsWith("data-")) node.setAttribute(k, v); else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
};
const badge = (text) => el("span", { class: `badge b-${text}` }, text);
const time = (ms) => (ms ? new Date(ms).toLocaleTimeString([], { hour12: false }) : "");
const signed = (text) => (text == null || Number(text) === 0 ? "" : Number(text) < 0 ? "neg" : "pos");

function schedule(section) {
  dirty.add(section);
  if (!frame) frame = requestAnimationFrame(render);
}

// --- the event stream -------------------------------------------------------------------------------
function applySnapshot(s) {
  model.markets = new Map(s.markets.map((m) => [m.key, m]));
  model.orders = new Map(s.orders.map((o) => [o.order_id, o]));
  model.positions = new Map(s.positions.map((p) => [p.key, p]));
  model.accounts = new Map(s.accounts.map((a) => [a.account_id, a]));
  model.components = new Map(s.components.map((c) => [c.name, c]));
  model.signals = s.signals; model.decisions = s.decisions; model.fills = s.fills;
  model.figures = s.figures; model.dlq = s.dlq; model.lag = s.lag || {};
  marketRows.clear(); $("markets").tBodies[0].replaceChildren();
  for (const section of ["markets", "orders", "positions", "accounts", "banners", "figures", "decisions", "fills", "chart"]) schedule(section);
}

function applyDelta(d) {
  for (const m of d.markets || []) {
    const held = model.markets.get(m.key);
    if (held && m.candle) {
      const candles = held.candles || [];
      if (candles.length && candles[candles.length - 1][0] === m.candle[0]) candles[candles.length - 1] = m.candle;
      else if (!candles.length || candles[candles.length - 1][0] < m.candle[0]) { candles.push(m.candle); if (candles.length > 200) candles.shift(); }
      m.candles = candles;
    } else if (m.candle) m.candles = [m.candle];
    m.prev = held ? held.last : null;
    model.markets.set(m.key, m);
    if (m.key === selected) schedule("chart");
  }
  if (d.markets) schedule("markets");
  for (const o of d.orders || []) model.orders.set(o.order_id, o);
  for (const id of d.orders_removed || []) model.orders.delete(id);
  if (d.orders || d.orders_removed) schedule("orders");
  for (const p of d.positions || []) model.positions.set(p.key, p);
  if (d.positions) schedule("positions");
  for (const a of d.accounts || []) model.accounts.set(a.account_id, a);
  if (d.accounts) { schedule("accounts"); schedule("banners"); }
  for (const c of d.components || []) model.components.set(c.name, c);
  if (d.components) schedule("banners");
  if (d.signals) { model.signals = model.signals.concat(d.signals).slice(-MAX_ITEMS); schedule("decisions"); }
  if (d.decisions) { model.decisions = model.decisions.concat(d.decisions).slice(-MAX_ITEMS); schedule("decisions"); }
  if (d.fills) { model.fills = model.fills.concat(d.fills).slice(-MAX_ITEMS); schedule("fills"); }
  if (d.figures) { model.figures = d.figures; schedule("figures"); }
  if (d.dlq) { model.dlq = d.dlq; model.lag = d.lag || {}; schedule("figures"); }
}

function connect() {
  const source = new EventSource("/events");
  source.addEventListener("open", () => { setLink(true); });
  source.addEventListener("snapshot", (e) => { setLink(true); applySnapshot(JSON.parse(e.data)); });
  source.addEventListener("delta", (e) => applyDelta(JSON.parse(e.data)));
  source.addEventListener("ages", (e) => {
    const a = JSON.parse(e.data); model.ages = a.ages; model.staleAfter = a.stale_after_s; schedule("ages");
  });
  source.addEventListener("error", () => setLink(false));
}

function setLink(up) {
  const link = $("link");
  link.className = `link ${up ? "up" : "down"}`;
  link.textContent = up ? "live" : "console unreachable: reconnecting…";
  model.linkDown = !up; schedule("banners");
}

// --- rendering --------------------------------------------------------------------------------------
function render() {
  frame = 0;
  const sections = new Set(dirty); dirty.clear();
  if (sections.has("markets")) renderMarkets();
  if (sections.has("ages")) renderAges();
  if (sections.has("chart")) renderChart();
  if (sections.has("orders")) renderOrders();
  if (sections.has("positions")) renderPositions();
  if (sections.has("accounts")) renderAccounts();
  if (sections.has("banners")) renderBanners();
  if (sections.has("figures")) renderFigures();
  if (sections.has("decisions")) renderDecisions();
  if (sections.has("fills")) renderFills();
}

const marketRows = new Map();
function renderMarkets() {
  const body = $("markets").tBodies[0];
  const filter = $("market-filter").value.trim().toUpperCase();
  let added = false;
  for (const [key, m] of model.markets) {
    let row = marketRows.get(key);
    if (!row) {
      row = el("tr", { "data-market": key });
      for (const cls of ["venue", "symbol", "last num", "chg num", "bid num", "ask num", "trades num", "age num"]) row.append(el("td", { class: cls }));
      row.addEventListener("click", () => select(key));
      marketRows.set(key, row); added = true;
    }
    const c = row.cells;
    c[0].textContent = m.venue; c[1].textContent = m.symbol;
    if (c[2].textContent !== (m.last ?? "")) {
      c[2].textContent = m.last ?? "";
      if (m.prev != null && m.last != null && m.prev !== m.last) {
        c[2].className = "last num"; void c[2].offsetWidth;
        c[2].className = `last num ${Number(m.last) >= Number(m.prev) ? "flash-up" : "flash-down"}`;
      }
    }
    c[3].textContent = m.change_pct ?? ""; c[3].className = `chg num ${signed(m.change_pct)}`;
    c[4].textContent = m.bid ?? ""; c[5].textContent = m.ask ?? ""; c[6].textContent = m.trades;
    row.hidden = Boolean(filter) && !key.toUpperCase().includes(filter);
  }
  if (added) {
    const keys = [...marketRows.keys()].sort();
    body.replaceChildren(...keys.map((k) => marketRows.get(k)));
    if (!selected && keys.length) select(keys[0]);
  }
  $("market-count").textContent = `${model.markets.size} instruments`;
  renderAges();
}

function renderAges() {
  for (const [key, row] of marketRows) {
    const age = key in model.ages ? model.ages[key] : model.markets.get(key)?.age_s;
    const cell = row.cells[7];
    cell.textContent = age == null ? "—" : age.toFixed(1);
    cell.className = `age num ${age == null || age > model.staleAfter ? "stale" : ""}`;
  }
}

function select(key) {
  selected = key;
  for (const [k, row] of marketRows) row.classList.toggle("selected", k === key);
  schedule("chart");
}

function renderChart() {
  const canvas = $("chart");
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  if (canvas.width !== width * ratio) { canvas.width = width * ratio; canvas.height = height * ratio; }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const m = selected && model.markets.get(selected);
  $("chart-title").textContent = m ? `${m.venue} ${m.symbol}  last ${m.last ?? "—"}` : "click an instrument";
  const candles = (m && m.candles) || [];
  if (!candles.length) {
    ctx.fillStyle = "#7d8a99"; ctx.font = "13px sans-serif";
    ctx.fillText(m ? "waiting for trades…" : "no market data yet", 16, 28); return;
  }
  const axis = 70, pad = 10, volH = 40;
  const plotW = width - axis - pad, plotH = height - pad * 2 - volH - 16;
  let lo = Infinity, hi = -Infinity, vmax = 0;
  for (const c of candles) { lo = Math.min(lo, +c[3]); hi = Math.max(hi, +c[2]); vmax = Math.max(vmax, +c[5]); }
  if (hi === lo) { hi += hi * 0.001 || 1; lo -= lo * 0.001 || 1; }
  const y = (p) => pad + (hi - p) / (hi - lo) * plotH;
  const slot = plotW / Math.max(candles.length, 30);
  const bw = Math.max(1, slot * 0.65);
  ctx.strokeStyle = "#243040"; ctx.fillStyle = "#7d8a99"; ctx.font = "11px sans-serif"; ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const p = lo + (hi - lo) * i / 4, yy = Math.round(y(p)) + 0.5;
    ctx.beginPath(); ctx.moveTo(0, yy); ctx.lineTo(plotW, yy); ctx.stroke();
    ctx.fillText(p.toPrecision(7), plotW + 6, yy + 4);
  }
  candles.forEach((c, i) => {
    const x = i * slot + slot / 2, up = +c[4] >= +c[1];
    ctx.strokeStyle = ctx.fillStyle = up ? "#2ebd85" : "#f6465d";
    ctx.beginPath(); ctx.moveTo(Math.round(x) + 0.5, y(+c[2])); ctx.lineTo(Math.round(x) + 0.5, y(+c[3])); ctx.stroke();
    const top = y(Math.max(+c[1], +c[4])), bottom = y(Math.min(+c[1], +c[4]));
    ctx.fillRect(x - bw / 2, top, bw, Math.max(1, bottom - top));
    if (vmax > 0) { ctx.globalAlpha = 0.35; const h = (+c[5] / vmax) * volH; ctx.fillRect(x - bw / 2, height - pad - 16 - h, bw, h); ctx.globalAlpha = 1; }
  });
  ctx.fillStyle = "#7d8a99";
  const every = Math.max(1, Math.ceil(70 / slot));  // a time label every ~70 px
  for (let i = 0; i < candles.length; i += every) ctx.fillText(time(candles[i][0]), Math.max(0, i * slot), height - 4);
  const last = +candles[candles.length - 1][4], ly = Math.round(y(last)) + 0.5;
  ctx.setLineDash([3, 3]); ctx.strokeStyle = "#4c9aff"; ctx.beginPath(); ctx.moveTo(0, ly); ctx.lineTo(plotW, ly); ctx.stroke(); ctx.setLineDash([]);
  ctx.fillStyle = "#4c9aff"; ctx.fillRect(plotW + 2, ly - 8, axis - 4, 16); ctx.fillStyle = "#fff"; ctx.fillText(candles[candles.length - 1][4], plotW + 6, ly + 4);
}

// Armed (first-clicked) actions by key, so a confirmation survives the row being re-rendered by an update.
const armed = new Map();
function actionButton(key, label, cls, onConfirm) {
  const isArmed = (armed.get(key) || 0) > Date.now();
  const button = el("button", { class: `${cls} ${isArmed ? "confirm" : ""}`, type: "button" }, isArmed ? `Confirm ${label.toLowerCase()}?` : label);
  button.disabled = !token || busy.has(key);
  button.addEventListener("click", async () => {
    if ((armed.get(key) || 0) <= Date.now()) {
      armed.set(key, Date.now() + 4000);
      button.textContent = `Confirm ${label.toLowerCase()}?`; button.classList.add("confirm");
      setTimeout(() => { if ((armed.get(key) || 0) <= Date.now()) { armed.delete(key); schedule("orders"); schedule("accounts"); } }, 4100);
      return;
    }
    armed.delete(key); busy.add(key); button.disabled = true;
    try { await onConfirm(); } finally { busy.delete(key); schedule("orders"); schedule("accounts"); }
  });
  return button;
}
const busy = new Set();

function renderOrders() {
  const rows = [...model.orders.values()]
    .sort((a, b) => (OPEN.has(b.status) - OPEN.has(a.status)) || b.created_ms - a.created_ms)
    .slice(0, MAX_ORDERS_SHOWN);
  $("orders").tBodies[0].replaceChildren(...rows.map((o) => {
    const row = el("tr", { "data-order": o.order_id },
      el("td", {}, time(o.created_ms)), el("td", {}, o.account_id), el("td", {}, o.symbol),
      el("td", {}, badge(o.side)), el("td", {}, o.type), el("td", { class: "num" }, o.quantity),
      el("td", { class: "num" }, o.price ?? "mkt"), el("td", { class: "num" }, o.filled ?? "0"),
      el("td", { class: "status", title: o.reject_message || "" }, badge(o.status)), el("td"));
    if (OPEN.has(o.status) && o.status !== "PENDING_CANCEL") {
      row.cells[9].append(actionButton(`cancel:${o.order_id}`, "Cancel", "cancel danger", () => post(`/api/orders/${encodeURIComponent(o.order_id)}/cancel`,
        { account_id: o.account_id }, `cancel of ${o.client_order_id || o.order_id} requested`)));
    }
    return row;
  }));
  const open = rows.filter((o) => OPEN.has(o.status)).length;
  $("order-count").textContent = `${open} open, ${model.orders.size} shown`;
}

function renderPositions() {
  const rows = [...model.positions.values()].sort((a, b) => a.key.localeCompare(b.key));
  $("positions").tBodies[0].replaceChildren(...(rows.length ? rows.map((p) => el("tr", { "data-position": p.key },
    el("td", {}, p.account_id), el("td", {}, p.symbol), el("td", { class: `num ${signed(p.quantity)}` }, p.quantity),
    el("td", { class: "num" }, p.average_price), el("td", { class: "num" }, p.mark ?? "—"),
    el("td", { class: `num ${signed(p.unrealized_pnl)}` }, p.unrealized_pnl ?? "—"),
    el("td", { class: `num ${signed(p.realized_pnl)}` }, p.realized_pnl))) : [el("tr", { class: "placeholder" }, el("td", { colSpan: 7 }, "no positions"))]));
}

function renderAccounts() {
  if (!model.accounts.size) return;
  const rows = [...model.accounts.values()].sort((a, b) => a.account_id.localeCompare(b.account_id));
  $("accounts").tBodies[0].replaceChildren(...rows.map((a) => {
    const halted = a.trading_state === "HALTED";
    const target = halted ? "ACTIVE" : "HALTED";
    const asset = a.valuation_asset ? ` ${a.valuation_asset}` : "";
    const balances = (a.balances || []).map((b) => `${b.asset} ${b.free} / ${b.locked}`).join(", ");
    return el("tr", { "data-account": a.account_id },
      el("td", {}, a.account_id), el("td", { class: "state" }, badge(a.trading_state)),
      el("td", { class: "num" }, a.equity == null ? "—" : `${a.equity}${asset}`),
      el("td", { class: `num ${signed(a.realized_pnl)}` }, a.realized_pnl ?? "—"),
      el("td", { class: `num ${signed(a.unrealized_pnl)}` }, a.unrealized_pnl ?? "—"),
      el("td", { class: "muted balances" }, balances || "—"), el("td", { class: "muted" }, a.reason || ""),
      el("td", {}, actionButton(`state:${a.account_id}:${target}`, halted ? "Resume" : "Halt", halted ? "resume" : "halt danger", () => post(
        `/api/accounts/${encodeURIComponent(a.account_id)}/trading-state`,
        { trading_state: target, reason: `${halted ? "resumed" : "halted"} from the operator console` },
        `${a.account_id}: ${target}`))));
  }));
}

function renderBanners() {
  const down = [...model.components.values()].filter((c) => c.up === false);
  const banners = down.map((c) => el("div", { class: "banner", "data-component": c.name },
    el("b", {}, `${c.name.replace("metrics:", "")} is down`), ` since ${time(c.since_ms)}: ${c.message}`));
  if ([...model.accounts.values()].some((a) => a.platform_halted)) {
    banners.unshift(el("div", { class: "banner", "data-component": "platform-halt" }, el("b", {}, "Platform halted"), ": the OMS accepts no new orders for any account (cancels still work)."));
  }
  if (model.linkDown) banners.unshift(el("div", { class: "banner", "data-component": "console" }, el("b", {}, "Console unreachable"), ": the page reconnects by itself; data shown may be stale."));
  $("banners").replaceChildren(...banners);
}

function figure(label, value, level) {
  return el("div", { class: `figure ${level || ""}`, "data-figure": label }, el("div", { class: "label" }, label), el("div", { class: "value" }, value));
}

function renderFigures() {
  const f = Object.values(model.figures);
  const ing = f.filter((x) => x.kind === "ingestion"), oms = f.find((x) => x.kind === "oms"), runners = f.filter((x) => x.kind === "runner");
  const out = [];
  const rate = ing.flatMap((x) => x.venues).reduce((s, v) => s + (v.rate || 0), 0);
  if (ing.length) {
    out.push(figure("feed msg/s", rate.toFixed(0)));
    const dropped = ing.reduce((s, x) => s + x.dropped, 0);
    out.push(figure("dropped", String(dropped), dropped ? "bad" : ""));
  }
  if (oms) {
    out.push(figure("outbox lag", `${oms.outbox_lag_events} ev / ${(oms.outbox_lag_s ?? 0).toFixed(1)} s`, oms.outbox_lag_s > 5 ? "bad" : oms.outbox_lag_events > 0 ? "warn" : ""));
    out.push(figure("OMS req/s", oms.request_rate == null ? "—" : oms.request_rate.toFixed(1)));
    out.push(figure("OMS err/s", oms.error_rate == null ? "—" : oms.error_rate.toFixed(2), oms.error_rate > 0 ? "bad" : ""));
    out.push(figure("OMS p99", oms.p99_s == null ? "—" : `${(oms.p99_s * 1000).toFixed(1)} ms`));
    out.push(figure("open orders", String(oms.open_orders)));
  }
  const dlqTotal = Object.values(model.dlq).reduce((s, n) => s + n, 0);
  const deadLettered = runners.reduce((s, r) => s + r.dead_lettered, 0);
  out.push(figure("DLQ records", String(dlqTotal || deadLettered), dlqTotal || deadLettered ? "bad" : ""));
  $("figures").replaceChildren(...out);
  const lagChips = Object.entries(model.lag).sort().flatMap(([group, topics]) => Object.entries(topics).map(([t, n]) =>
    el("span", { class: `chip ${n > 1000 ? "bad" : ""}`, "data-lag": `${group}:${t}` }, `lag ${group} ← ${t}: ${n}`)));
  $("dlq").replaceChildren(...Object.entries(model.dlq).sort().map(([t, n]) => el("span", { class: `chip ${n ? "bad" : ""}`, "data-dlq": t }, `DLQ ${t}: ${n}`)), ...lagChips);
  const maxLag = Math.max(0, ...Object.values(model.lag).flatMap((t) => Object.values(t)));
  if (Object.keys(model.lag).length) out.push(figure("Kafka lag", String(maxLag), maxLag > 1000 ? "warn" : ""));
  const body = $("feeds").tBodies[0];
  const rows = [];
  for (const x of ing) for (const v of x.venues) {
    const streams = v.streams.length ? v.streams : [{}];
    streams.forEach((s, i) => rows.push(el("tr", { "data-feed": `${v.venue}:${s.stream || ""}` },
      el("td", {}, i ? "" : v.venue), el("td", { class: "num" }, i ? "" : (v.rate ?? "—")), el("td", { class: "num" }, i ? "" : (v.connections ?? "—")),
      el("td", { class: "num" }, i ? "" : (v.reconnects ?? 0)), el("td", { class: `num ${v.stale_streams ? "stale" : ""}` }, i ? "" : (v.stale_streams ?? 0)),
      el("td", {}, s.stream || "—"), el("td", { class: "num" }, s.gaps ?? 0), el("td", { class: "num" }, s.gaps_per_min ?? "—"),
      el("td", { class: "num" }, s.resyncs ?? 0), el("td", { class: "num" }, s.resyncs_per_min ?? "—"))));
  }
  body.replaceChildren(...(rows.length ? rows : [el("tr", { class: "placeholder" }, el("td", { colSpan: 10 }, "no ingestion metrics (is ingestion running?)"))]));
}

function renderDecisions() {
  const bySignal = new Map(model.decisions.map((d) => [d.signal_id, d]));
  const items = model.signals.slice(-100).reverse().map((s) => {
    const d = bySignal.get(s.signal_id);
    const item = el("div", { class: "item", "data-signal": s.signal_id },
      el("div", { class: "head" }, badge(s.direction), el("b", {}, s.symbol), el("span", { class: "muted" }, `${s.strategy} · ${s.interval} · @ ${s.price ?? "—"}`),
        d ? badge(d.verdict) : el("span", { class: "muted" }, "awaiting decision"), el("span", { class: "time" }, time(s.time_ms))),
      el("div", { class: "why" }, s.reasons.join("; ")));
    if (d) {
      item.append(el("div", { class: "votes" }, ...d.votes.map((v) => el("span", { class: "vote", title: v.rationale }, `${v.analyst}: `, badge(v.vote), ` ${v.confidence}`))));
      if (d.rationale) item.append(el("div", { class: "why" }, d.rationale));
    }
    return item;
  });
  const signalIds = new Set(model.signals.map((s) => s.signal_id));
  for (const d of model.decisions.slice(-50).reverse()) {
    if (signalIds.has(d.signal_id)) continue;
    items.push(el("div", { class: "item", "data-decision": d.decision_id },
      el("div", { class: "head" }, badge(d.direction), el("b", {}, d.symbol), el("span", { class: "muted" }, d.strategy), badge(d.verdict), el("span", { class: "time" }, time(d.time_ms))),
      el("div", { class: "votes" }, ...d.votes.map((v) => el("span", { class: "vote", title: v.rationale }, `${v.analyst}: `, badge(v.vote)))),
      el("div", { class: "why" }, d.rationale || (d.signal_reasons || []).join("; "))));
  }
  $("decisions").replaceChildren(...(items.length ? items : [el("div", { class: "muted" }, "no signals yet")]));
}

function renderFills() {
  $("fills").replaceChildren(...model.fills.slice(-50).reverse().map((f) => el("div", { "data-fill": f.fill_id },
    `${time(f.time_ms)}  ${f.account_id}  `, badge(f.side), ` ${f.quantity} ${f.symbol} @ ${f.price}`)));
}

// --- actions ----------------------------------------------------------------------------------------
function toast(text, error = false) {
  const t = $("toast");
  t.textContent = text; t.className = `toast ${error ? "error" : ""}`; t.hidden = false;
  clearTimeout(toast.timer); toast.timer = setTimeout(() => { t.hidden = true; }, 6000);
}

async function post(url, body, done) {
  try {
    const response = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json", "X-Admin-Token": token }, body: JSON.stringify(body) });
    const reply = await response.json().catch(() => ({}));
    if (!response.ok) { toast(`${reply.error || response.status}: ${reply.message || "failed"}`, true); if (response.status === 401) lock(); return; }
    toast(done);
  } catch (err) { toast(`console unreachable: ${err}`, true); }
}

async function unlock(candidate) {
  const response = await fetch("/api/accounts", { headers: { "X-Admin-Token": candidate } }).catch((err) => ({ ok: false, status: 0, json: async () => ({ message: String(err) }) }));
  const reply = await response.json().catch(() => ({}));
  if (!response.ok) { toast(`cannot unlock: ${reply.error || response.status} ${reply.message || ""}`, true); return; }
  token = candidate; sessionStorage.setItem("aipx-admin-token", token);
  $("admin-token").hidden = true; $("admin-unlock").hidden = true; $("admin-lock").hidden = false;
  toast(`actions unlocked (${reply.accounts.length} accounts)`);
  schedule("orders"); schedule("accounts");
}

function lock() {
  token = ""; sessionStorage.removeItem("aipx-admin-token");
  $("admin-token").hidden = false; $("admin-unlock").hidden = false; $("admin-lock").hidden = true; $("admin-token").value = "";
  schedule("orders"); schedule("accounts");
}

$("admin").addEventListener("submit", (e) => { e.preventDefault(); const t = $("admin-token").value.trim(); if (t) unlock(t); });
$("admin-lock").addEventListener("click", lock);
$("market-filter").addEventListener("input", () => schedule("markets"));
window.addEventListener("resize", () => schedule("chart"));
if (token) unlock(token);
connect();
