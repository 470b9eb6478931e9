"use strict";
// The monitoring dashboard: reads the monitor's JSON API and draws tables and SVG charts.
// Everything the server sends (entity names, documents, error messages) enters the page as
// text nodes or as attribute values set through the DOM, never as HTML: documents are untrusted.

const SVG_NS = "http://www.w3.org/2000/svg";
const WINDOWS = {"15m": 900, "1h": 3600, "1d": 86400};
const SPANS = ["1d", "7d", "30d"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
// A reading key may be given in the fragment (#key=...), which is never sent to the server.
const apiKey = new URLSearchParams(location.hash.slice(1)).get("key");
const state = {window: "1h", span: "7d", entity: null, since: null, series: null, chart: null, cursor: null,
               generation: 0, docs: 0};

// DOM and formatting helpers ------------------------------------------------------------
function $(id) { return document.getElementById(id); }

function build(node, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : String(c));  // a string becomes a text node
  return node;
}
function el(tag, attrs, ...children) { return build(document.createElement(tag), attrs, children); }
function svg(tag, attrs, ...children) { return build(document.createElementNS(SVG_NS, tag), attrs, children); }

function utcText(epoch) { return new Date(epoch * 1000).toISOString().slice(0, 16).replace("T", " "); }
function dayText(epoch) { const d = new Date(epoch * 1000); return MONTHS[d.getUTCMonth()] + " " + d.getUTCDate(); }
function epochOf(iso) { return Math.floor(Date.parse(iso) / 1000); }

function windowText(start, end) {
  if (end - start >= 86400 && start % 86400 === 0) {
    return utcText(start).slice(0, 10) + (end - start > 86400 ? " – " + utcText(end - 1).slice(0, 10) : "");
  }
  const a = utcText(start), b = utcText(end);
  return a + "–" + (a.slice(0, 10) === b.slice(0, 10) ? b.slice(11) : b);
}

function signed(v) {
  if (v === null || v === undefined) return "–";
  return (v > 0.005 ? "+" : v < -0.005 ? "−" : "") + Math.abs(v).toFixed(2);
}
function count(n, one, many) { return `${n} ${n === 1 ? one : many || one + "s"}`; }
function percent(v) { return v === null || v === undefined ? "–" : Math.round(v * 100) + "%"; }
function tone(v) { return v === null || v === undefined ? "" : v < -0.05 ? "neg" : v > 0.05 ? "pos" : ""; }
function metricValue(metric, v) {
  if (v === null || v === undefined) return "–";
  if (/share/.test(metric)) return percent(v);
  if (/sentiment/.test(metric)) return signed(v);
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

function setStatus(text, error) {
  $("status").textContent = text;
  $("status").classList.toggle("error", !!error);
}

// API -----------------------------------------------------------------------------------------
function headers() { return apiKey ? {"Authorization": "Bearer " + apiKey} : {}; }

function url(path, params) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== null && v !== undefined) query.set(k, v);
  const text = query.toString();
  return text ? path + "?" + text : path;
}

async function api(path, params) {
  const response = await fetch(url(path, params), {headers: headers()});
  let body = null;
  try { body = await response.json(); } catch (err) { /* an answer that is not JSON */ }
  if (!response.ok) {
    throw new Error((body && body.error && body.error.message) || ("the server answered " + response.status));
  }
  return body;
}

function csvUrl(entity) { return url("/v1/monitor/export.csv", {window: state.window, entity: entity}); }

// A plain link cannot send the key; with one, fetch the file and hand it over as a download.
async function downloadWithKey(event) {
  if (!apiKey) return;
  event.preventDefault();
  try {
    const response = await fetch(this.href, {headers: headers()});
    if (!response.ok) throw new Error("the server answered " + response.status);
    const name = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
    const link = el("a", {href: URL.createObjectURL(await response.blob()), download: name ? name[1] : "export.csv"});
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  } catch (err) {
    setStatus("The export failed: " + err.message, true);
  }
}

// Sparklines and line paths -----------------------------------------------------------------
// A path through [x, y] points; a null y (a window without documents) leaves a gap, and "h0"
// keeps an isolated point visible as a dot (round line caps).
function linePath(xy) {
  let d = "", open = false;
  for (const [x, y] of xy) {
    if (y === null) { open = false; continue; }
    d += (open ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1) + (open ? "" : "h0");
    open = true;
  }
  return d;
}

function sparkline(values, kind, label) {
  const w = 120, h = 28, pad = 3, n = values.length;
  const hi = kind === "sentiment" ? 1 : Math.max(1, ...values.filter(v => v !== null));
  const lo = kind === "sentiment" ? -1 : 0;
  const y = v => pad + (h - 2 * pad) * (1 - (v - lo) / (hi - lo));
  const step = n > 1 ? (w - 2 * pad) / (n - 1) : 0;
  const node = svg("svg", {class: "spark", width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: "img",
                           "aria-label": label});
  if (kind === "sentiment") node.append(svg("line", {class: "zero", x1: pad, x2: w - pad, y1: y(0), y2: y(0)}));
  node.append(svg("path", {class: kind, d: linePath(values.map((v, i) => [pad + i * step, v === null ? null : y(v)]))}));
  return node;
}

// Entities -----------------------------------------------------------------------------------
function entityRow(r) {
  const open = el("button", {type: "button", class: "link", title: r.entity,
                             "aria-label": `${r.name}: show its time series`}, r.name);
  open.addEventListener("click", () => openEntity(r.entity));
  const known = r.spark_sentiment.filter(v => v !== null);
  return el("tr", {"data-entity": r.entity, class: r.entity === state.entity ? "selected" : null},
    el("td", {}, open),
    el("td", {class: "num"}, r.unique_volume), el("td", {class: "num"}, r.volume), el("td", {class: "num"}, r.reprints),
    el("td", {class: "num " + tone(r.mean_sentiment)}, signed(r.mean_sentiment)),
    el("td", {class: "num"}, percent(r.negative_share)),
    el("td", {class: "num"}, el("span", {class: "badge " + (r.alerts ? "firing" : "none")}, r.alerts)),
    el("td", {}, sparkline(r.spark_volume, "volume",
                           `Stories per window, at most ${Math.max(0, ...r.spark_volume)}`)),
    el("td", {}, sparkline(r.spark_sentiment, "sentiment", known.length
      ? `Mean sentiment per window, from ${signed(Math.min(...known))} to ${signed(Math.max(...known))}`
      : "No sentiment in this span")));
}

function renderEntities(rows) {
  const body = $("entities").tBodies[0];
  body.replaceChildren(...rows.map(entityRow));
  if (!rows.length) body.append(el("tr", {}, el("td", {colspan: 9, class: "muted"}, "No documents in this span.")));
}

// Alert feed ---------------------------------------------------------------------------------
function alertRow(a) {
  const when = windowText(a.window_start_epoch, a.epoch);
  const name = a.entity_name || a.entity;
  const open = el("button", {type: "button", class: "link",
                             "aria-label": `${when}, ${name}, ${a.rule} ${a.state}: show the documents`}, when);
  open.addEventListener("click", () => drillAlert(a));
  return el("tr", {"data-rule": a.rule, "data-state": a.state, "data-entity": a.entity, "data-epoch": a.epoch},
    el("td", {}, open), el("td", {}, name), el("td", {}, a.rule), el("td", {}, a.metric),
    el("td", {class: "num"}, metricValue(a.metric, a.value)),
    el("td", {}, el("span", {class: "badge " + a.state}, a.state)));
}

function renderAlerts(alerts) {
  const body = $("alerts").tBodies[0];
  const newest = alerts.slice(0, 200);  // asked for newest first
  body.replaceChildren(...newest.map(alertRow));
  if (!newest.length) body.append(el("tr", {}, el("td", {colspan: 6, class: "muted"}, "No alerts in this span.")));
}

function drillAlert(a) {
  if (a.entity !== state.entity) openEntity(a.entity);
  showDocuments(a.entity, a.window_start_epoch, a.epoch,
                `${a.entity_name || a.entity}, ${a.rule} (${a.state}), ${windowText(a.window_start_epoch, a.epoch)} UTC`);
}

// One entity's chart --------------------------------------------------------------------------
const BOX = {left: 52, right: 16, top: 24, sentiment: 170, gap: 36, volume: 110, bottom: 26};

function niceMax(v) {
  const power = Math.pow(10, Math.floor(Math.log10(v)));
  return [1, 2, 5, 10].map(m => m * power).find(m => m >= v);
}

function timeTicks(t0, t1) {
  const steps = [3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400, 14 * 86400];
  const step = steps.find(s => (t1 - t0) / s <= 8) || 28 * 86400;
  const ticks = [];
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) ticks.push(t);
  return ticks.map(t => [t, step >= 86400 || t % 86400 === 0 ? dayText(t) : utcText(t).slice(11)]);
}

function panel(root, label, cls, top, ticks, x0, x1) {
  for (const [v, text, y] of ticks) {
    root.append(svg("line", {class: v === 0 && cls === "series-sentiment" ? "zero-line" : "grid",
                             x1: x0, x2: x1, y1: y, y2: y}));
    root.append(svg("text", {x: x0 - 6, y: y + 4, "text-anchor": "end", class: "axis-label"}, text));
  }
  root.append(svg("line", {class: cls, x1: x0, x2: x0 + 18, y1: top - 10, y2: top - 10}));
  root.append(svg("text", {class: "panel-label", x: x0 + 24, y: top - 6}, label));
}

function markers(root, alerts, x, t0, t1, top, bottom) {
  const groups = new Map();
  for (const a of alerts) {
    if (a.epoch <= t0 || a.window_start_epoch >= t1) continue;
    const key = a.window_start_epoch + "-" + a.epoch;
    groups.set(key, (groups.get(key) || []).concat([a]));
  }
  for (const group of groups.values()) {
    const start = Math.max(group[0].window_start_epoch, t0), end = Math.min(group[0].epoch, t1);
    const firing = group.filter(a => a.state === "firing");
    const text = windowText(group[0].window_start_epoch, group[0].epoch) + " UTC: " +
      group.map(a => `${a.rule} ${a.state} (${a.metric} ${metricValue(a.metric, a.value)})`).join("; ");
    const mid = (x(start) + x(end)) / 2;
    if (!firing.length) {
      root.append(svg("g", {class: "recovery-marker"}, svg("title", {}, text),
        svg("path", {d: `M${mid.toFixed(1)} ${top + 2}l5 8h-10z`})));
      continue;
    }
    const g = svg("g", {class: "alert-marker", tabindex: 0, role: "button", "data-rules": firing.map(a => a.rule).join(" "),
                        "aria-label": text + ". Show the documents."},
      svg("title", {}, text),
      svg("rect", {x: x(start), width: Math.max(3, x(end) - x(start)), y: top, height: bottom - top}),
      svg("line", {x1: mid, x2: mid, y1: top, y2: bottom}),
      svg("circle", {cx: mid, cy: top + 8, r: 6}));
    const drill = () => drillAlert(firing[0]);
    g.addEventListener("click", event => { event.stopPropagation(); drill(); });
    g.addEventListener("keydown", event => {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); event.stopPropagation(); drill(); }
    });
    root.append(g);
  }
}

function drawChart(series) {
  const box = $("chart"), points = series.points, w = WINDOWS[series.window] || 3600;
  state.series = series;
  state.cursor = null;
  $("readout").textContent = "";
  if (!points.length) {
    box.replaceChildren(el("p", {class: "muted"}, "No documents in this span."));
    return;
  }
  // As wide as its box, so that the labels keep their size; at least 600 units, or it scales down.
  const b = BOX, width = Math.max(600, Math.round(box.clientWidth) || 900);
  const height = b.top + b.sentiment + b.gap + b.volume + b.bottom;
  const x0 = b.left, x1 = width - b.right;
  const t0 = points[0].epoch, t1 = points[points.length - 1].epoch + w;
  const x = t => x0 + (t - t0) / (t1 - t0) * (x1 - x0);
  const sTop = b.top, sBottom = sTop + b.sentiment, vTop = sBottom + b.gap, vBottom = vTop + b.volume;
  const ys = v => sTop + (1 - v) / 2 * b.sentiment;
  const vmax = niceMax(Math.max(1, ...points.map(p => p.unique_volume)));
  const yv = v => vBottom - v / vmax * b.volume;
  const firing = series.alerts.filter(a => a.state === "firing").length;
  const root = svg("svg", {viewBox: `0 0 ${width} ${height}`, role: "group", "aria-labelledby": "chart-title"},
    svg("title", {id: "chart-title"}, `${series.name}: mean sentiment and unique stories per ${series.window} window, ` +
        `${windowText(t0, t1)} UTC, ${firing} firing alert${firing === 1 ? "" : "s"}`));
  panel(root, "Mean sentiment", "series-sentiment", sTop,
        [[1, "+1"], [0.5, "+0.5"], [0, "0"], [-0.5, "−0.5"], [-1, "−1"]].map(([v, t]) => [v, t, ys(v)]), x0, x1);
  panel(root, "Unique stories", "series-volume", vTop,
        [vmax, vmax / 2, 0].map(v => [v, String(v), yv(v)]), x0, x1);
  const axis = svg("g", {class: "axis"});
  for (const [t, text] of timeTicks(t0, t1)) {
    axis.append(svg("line", {class: "grid", x1: x(t), x2: x(t), y1: vBottom, y2: vBottom + 4}),
                svg("text", {x: x(t), y: vBottom + 18,  // the end labels stay inside the chart
                             "text-anchor": x(t) > x1 - 30 ? "end" : x(t) < x0 + 30 ? "start" : "middle"}, text));
  }
  root.append(axis);
  const mid = p => x(p.epoch + w / 2);
  const volume = points.map(p => [mid(p), yv(p.unique_volume)]);
  root.append(svg("path", {class: "area-volume",
                           d: linePath(volume) + `L${mid(points[points.length - 1]).toFixed(1)} ${vBottom}` +
                              `L${mid(points[0]).toFixed(1)} ${vBottom}Z`}),
              svg("path", {class: "series-volume", d: linePath(volume)}),
              svg("path", {class: "series-sentiment",
                           d: linePath(points.map(p => [mid(p), p.mean_sentiment === null ? null : ys(p.mean_sentiment)]))}));
  const cursor = svg("line", {class: "cursor", y1: sTop, y2: vBottom, visibility: "hidden"});
  const overlay = svg("rect", {x: x0, y: sTop, width: x1 - x0, height: vBottom - sTop, fill: "transparent"});
  root.append(cursor, overlay);
  markers(root, series.alerts, x, t0, t1, sTop, vBottom);
  state.chart = {x, w, t0, cursor};
  const at = event => {
    const p = new DOMPoint(event.clientX, event.clientY).matrixTransform(root.getScreenCTM().inverse());
    return Math.min(points.length - 1, Math.max(0, Math.floor((p.x - x0) / (x1 - x0) * (t1 - t0) / w)));
  };
  overlay.addEventListener("mousemove", event => setCursor(at(event)));
  overlay.addEventListener("click", event => { setCursor(at(event)); drillWindow(state.cursor); });
  box.replaceChildren(root);
}

function setCursor(i) {
  const p = state.series.points[i], c = state.chart;
  state.cursor = i;
  const xm = c.x(p.epoch + c.w / 2).toFixed(1);
  c.cursor.setAttribute("x1", xm);
  c.cursor.setAttribute("x2", xm);
  c.cursor.setAttribute("visibility", "visible");
  $("readout").textContent = `${windowText(p.epoch, p.epoch + c.w)} UTC · ${count(p.unique_volume, "story", "stories")} ` +
    `(${count(p.volume, "document")}) · mean sentiment ${signed(p.mean_sentiment)} · negative ${percent(p.negative_share)}`;
}

function drillWindow(i) {
  const p = state.series.points[i], w = state.chart.w;
  showDocuments(state.series.entity, p.epoch, p.epoch + w, `${state.series.name}, ${windowText(p.epoch, p.epoch + w)} UTC`);
}

function onChartKey(event) {
  if (!state.series || !state.series.points.length || event.target !== $("chart")) return;
  const last = state.series.points.length - 1;
  const i = state.cursor === null ? last : state.cursor;
  const moves = {ArrowLeft: i - 1, ArrowRight: i + 1, PageUp: i - 24, PageDown: i + 24, Home: 0, End: last};
  if (event.key in moves) {
    setCursor(Math.min(last, Math.max(0, moves[event.key])));
  } else if ((event.key === "Enter" || event.key === " ") && state.cursor !== null) {
    drillWindow(state.cursor);
  } else {
    return;
  }
  event.preventDefault();
}

function openEntity(id) {
  state.entity = id;
  writeHash();
  for (const row of $("entities").tBodies[0].rows) row.classList.toggle("selected", row.dataset.entity === id);
  $("entity").hidden = false;
  return loadEntity(state.generation);
}

async function loadEntity(generation) {
  const id = state.entity;
  $("chart").setAttribute("aria-busy", "true");
  try {
    const series = await api("/v1/monitor/entities/" + encodeURIComponent(id), {window: state.window, span: state.span});
    if (generation !== state.generation || id !== state.entity) return;
    $("entity-heading").textContent = series.name || id;
    $("csv-entity").href = csvUrl(id);
    $("csv-entity").textContent = `CSV: ${series.name || id}`;
    drawChart(series);
  } catch (err) {
    if (id === state.entity) $("chart").replaceChildren(el("p", {class: "error"}, err.message));
  } finally {
    $("chart").removeAttribute("aria-busy");
  }
}

// Documents -----------------------------------------------------------------------------------
function safeLink(href) {
  try { return ["http:", "https:"].includes(new URL(href).protocol); } catch (err) { return false; }
}

// The text with its mention spans underlined and the words that pushed the model toward
// negative (score > 0) in <mark>, five shades by score relative to the document's strongest.
// The server counts characters in code points, JavaScript in UTF-16 units: cut by code points.
function highlighted(text, explanation, spans) {
  const chars = Array.from(text), n = chars.length;
  const fits = (s, e) => Number.isInteger(s) && Number.isInteger(e) && 0 <= s && s < e && e <= n;
  const words = ((explanation && explanation.words) || []).filter(w => w.score > 0 && fits(w.start, w.end));
  const mentions = (spans || []).filter(s => Array.isArray(s) && fits(s[0], s[1]));
  const top = Math.max(...words.map(w => w.score));
  const cuts = new Set([0, n]);
  for (const w of words) cuts.add(w.start).add(w.end);
  for (const [s, e] of mentions) cuts.add(s).add(e);
  const at = [...cuts].sort((a, b) => a - b);
  const out = [];
  for (let i = 0; i + 1 < at.length; i++) {
    const a = at[i], b = at[i + 1];
    let node = document.createTextNode(chars.slice(a, b).join(""));
    if (mentions.some(([s, e]) => s <= a && b <= e)) node = el("span", {class: "mention"}, node);
    const word = words.find(w => w.start <= a && b <= w.end);
    if (word) {
      node = el("mark", {class: "w" + Math.max(1, Math.ceil(word.score / top * 5)),
                         title: `toward negative: ${word.score.toFixed(3)}`}, node);
    }
    out.push(node);
  }
  return out;
}

function documentItem(d) {
  const meta = el("div", {class: "meta"}, `${utcText(d.epoch)} UTC · ${d.label} · negative ${percent(d.p_negative)}` +
                  (d.reprint ? " · reprint" : "") + (d.source ? " · " + d.source : ""));
  if (d.url && safeLink(d.url)) {
    meta.append(" · ", el("a", {href: d.url, rel: "noopener noreferrer nofollow", target: "_blank"}, "source"));
  }
  const text = el("p", {class: "text"}, ...highlighted(d.text, d.explanation, d.spans));
  return el("li", {class: "doc", "data-id": d.id}, meta, text);
}

async function showDocuments(entity, since, until, context) {
  const ticket = ++state.docs;
  const list = $("documents");
  $("documents-context").textContent = `Loading the documents of ${context}…`;
  list.setAttribute("aria-busy", "true");
  try {
    const body = await api("/v1/monitor/documents", {entity, since, until, limit: 20, explain: "true",
                                                     order: "negative"});
    if (ticket !== state.docs) return;
    const n = body.documents.length;
    $("documents-context").textContent = `${context}: ${n === 20 ? "the 20 most negative" : n} document` +
      `${n === 1 ? "" : "s"}${n > 1 && n < 20 ? ", most negative first" : ""}.`;
    list.replaceChildren(...body.documents.map(documentItem));
  } catch (err) {
    if (ticket === state.docs) $("documents-context").textContent = "The documents could not be read: " + err.message;
  } finally {
    if (ticket === state.docs) list.removeAttribute("aria-busy");
  }
}

// Loading and state ------------------------------------------------------------------------
function writeHash() {
  const params = new URLSearchParams();
  if (apiKey) params.set("key", apiKey);
  params.set("window", state.window);
  params.set("span", state.span);
  if (state.entity) params.set("entity", state.entity);
  history.replaceState(null, "", "#" + params);
}

async function loadAll() {
  const generation = ++state.generation;
  setStatus("Loading…");
  $("csv-all").href = csvUrl(null);
  try {
    const overview = await api("/v1/monitor/overview", {window: state.window, span: state.span});
    if (generation !== state.generation) return;
    renderEntities(overview.entities);
    if (!state.entity && overview.entities.length) state.entity = overview.entities[0].entity;
    if (state.entity) openEntity(state.entity);
    // The feed covers the table's span, counted back from the newest document (not from now),
    // so that a replayed history shows its alerts too.
    const feed = await api("/v1/monitor/alerts", {since: overview.since, limit: 200, order: "newest"});
    if (generation !== state.generation) return;
    renderAlerts(feed.alerts);
    setStatus(overview.since
      ? `${count(overview.entities.length, "entity", "entities")}, ${count(feed.alerts.length, "alert")}, ${windowText(epochOf(overview.since),
         epochOf(overview.until))} UTC, windows of ${state.window}.`
      : "No documents are stored yet.");
  } catch (err) {
    if (generation === state.generation) setStatus("The monitor could not be read: " + err.message, true);
  }
}

function init() {
  const saved = new URLSearchParams(location.hash.slice(1));
  if (saved.get("window") in WINDOWS) state.window = saved.get("window");
  if (SPANS.includes(saved.get("span"))) state.span = saved.get("span");
  state.entity = saved.get("entity") || null;
  $("window").value = state.window;
  $("span").value = state.span;
  const changed = () => { state.window = $("window").value; state.span = $("span").value; writeHash(); loadAll(); };
  $("window").addEventListener("change", changed);
  $("span").addEventListener("change", changed);
  $("controls").addEventListener("submit", event => { event.preventDefault(); changed(); });
  $("most-negative").addEventListener("click", () => {
    const s = state.series;
    if (!s || !s.points.length) return;
    const w = WINDOWS[s.window] || 3600, t0 = s.points[0].epoch, t1 = s.points[s.points.length - 1].epoch + w;
    showDocuments(s.entity, t0, t1, `${s.name}, ${windowText(t0, t1)} UTC`);
  });
  $("chart").tabIndex = 0;
  $("chart").setAttribute("aria-describedby", "readout");
  $("chart").addEventListener("keydown", onChartKey);
  $("readout").setAttribute("aria-live", "polite");
  for (const id of ["csv-all", "csv-entity"]) $(id).addEventListener("click", downloadWithKey);
  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => { if (state.series) drawChart(state.series); }, 200);
  });
  loadAll();
}

init();
