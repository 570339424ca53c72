/*
 * app.js - the tend review dashboard: a single page over the JSON API of
 * `tend serve` (docs/serve.md). Hash routes: #/runs, #/run/NAME,
 * #/incidents, #/proposals, #/proposal/ID, #/audit. Data only ever goes
 * into the page as text nodes (never innerHTML), so nothing in the store
 * can script the page.
 */
"use strict";

const S = {
  csrf: null,
  readOnly: true,
  token: sessionStorage.getItem("tend.token") || "",
  timers: [],
  charts: [],
};

/* ---- small helpers ------------------------------------------------------ */

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined || k === false) continue;
    el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return el;
}

function num(v, digits) {
  if (v === null || v === undefined) return "-";
  if (typeof v === "string") return v; /* "inf", "-inf" */
  if (!isFinite(v)) return String(v);
  if (Number.isInteger(v) && Math.abs(v) < 1e15) return v.toLocaleString("en-US");
  return Number(v).toPrecision(digits || 4);
}

function when(t) {
  if (!t) return "-";
  const d = new Date(t * 1000);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function dur(s) {
  if (s === null || s === undefined || !isFinite(s) || s < 0) return "-";
  if (s < 60) return s.toFixed(1) + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + String(Math.floor(s % 60)).padStart(2, "0") + "s";
  return Math.floor(s / 3600) + "h" + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + "m";
}

function pct(r) {
  return r === null || r === undefined || !isFinite(r) ? "-" : (100 * r).toFixed(1) + "%";
}

function badge(text, cls) {
  return h("span", { class: "badge " + (cls || text || "") }, text || "-");
}

function plain(v) {
  /* a y value from the API: NaN comes as null, infinities as strings */
  return typeof v === "number" ? v : null;
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, opts) {
  opts = opts || {};
  const headers = Object.assign({}, opts.headers || {});
  if (S.token) headers["Authorization"] = "Bearer " + S.token;
  const res = await fetch(path, Object.assign({}, opts, { headers, cache: "no-store" }));
  let body = null;
  try { body = await res.json(); } catch (e) { body = null; }
  if (!res.ok && res.status !== 409) {
    throw new ApiError(res.status, (body && body.error) || res.statusText);
  }
  return body;
}

async function post(path, payload) {
  return api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Tend-CSRF": S.csrf || "" },
    body: JSON.stringify(payload || {}),
  });
}

function every(ms, fn) {
  S.timers.push(setInterval(fn, ms));
}

function cleanup() {
  S.timers.forEach(clearInterval);
  S.timers = [];
  S.charts.forEach((c) => c.destroy());
  S.charts = [];
}

const main = () => document.getElementById("main");

function show(...nodes) {
  main().replaceChildren(...nodes.flat(4).filter((n) => n !== null && n !== undefined && n !== false));
}

function errorBox(e) {
  return h("p", { class: "error", "data-testid": "error" }, String(e.message || e));
}

/* ---- charts ------------------------------------------------------------- */

const COLORS = ["#1f5fbf", "#e08a00", "#2e7d32", "#8e24aa", "#c62828", "#00838f"];

/* Binary search: the index of the first x >= v. */
function lowerBound(xs, v) {
  let lo = 0, hi = xs.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (xs[mid] < v) lo = mid + 1; else hi = mid; }
  return lo;
}

/* Draws incident markers (on the first series) and promotion lines. */
function marksPlugin(marks, el) {
  return {
    hooks: {
      draw: (u) => {
        const ctx = u.ctx, xs = u.data[0], ys = u.data[1] || [];
        const top = u.bbox.top, bottom = u.bbox.top + u.bbox.height;
        let nInc = 0, nPro = 0;
        ctx.save();
        for (const p of marks.promotions || []) {
          const x = u.valToPos(p.step, "x", true);
          if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
          ctx.strokeStyle = "#2e7d32";
          ctx.lineWidth = 2 * devicePixelRatio;
          ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, bottom); ctx.stroke();
          ctx.fillStyle = "#2e7d32";
          ctx.font = `${11 * devicePixelRatio}px sans-serif`;
          ctx.fillText("promoted #" + p.proposal_id, x + 4, top + 12 * devicePixelRatio);
          nPro++;
        }
        for (const inc of marks.incidents || []) {
          if (inc.onset_step === null) continue;
          const x = u.valToPos(inc.onset_step, "x", true);
          if (x < u.bbox.left - 1 || x > u.bbox.left + u.bbox.width + 1) continue;
          let i = Math.min(lowerBound(xs, inc.onset_step), xs.length - 1);
          let y = ys[i];
          for (let k = i; (y === null || y === undefined) && k >= 0; k--) y = ys[k];
          const py = y === null || y === undefined ? top + 8 : u.valToPos(y, "y", true);
          ctx.fillStyle = inc.severity === "critical" ? "#c62828" : "#e08a00";
          const r = 6 * devicePixelRatio;
          ctx.beginPath();
          ctx.moveTo(x, py - r); ctx.lineTo(x + r, py + r); ctx.lineTo(x - r, py + r);
          ctx.closePath(); ctx.fill();
          nInc++;
        }
        ctx.restore();
        el.dataset.incidentMarkers = nInc;
        el.dataset.promotionLines = nPro;
      },
    },
  };
}

/* An axis tick: short, and readable for learning rates and throughputs. */
function tick(v) {
  const a = Math.abs(v);
  if (v === 0) return "0";
  if (a >= 1e6) return +(v / 1e6).toPrecision(3) + "M";
  if (a >= 1e4) return +(v / 1e3).toPrecision(3) + "k";
  if (a < 1e-2) return v.toExponential(1);
  return String(+v.toPrecision(3));
}

/* series: [{label, x: [], y: []}]; several series are joined on x. */
function lineChart(el, title, series, marks, onZoom) {
  const tables = series.map((s) => [s.x, s.y.map(plain)]);
  const data = tables.length === 1 ? tables[0] : uPlot.join(tables);
  const width = Math.max(320, el.clientWidth || 600);
  let points = 0;
  for (let k = 1; k < data.length; k++) points += data[k].filter((v) => v != null).length;
  el.dataset.points = points;
  const opts = {
    title, width, height: 220,
    scales: { x: { time: false } },
    series: [{ label: "step" }].concat(series.map((s, i) => ({
      label: s.label, stroke: s.color || COLORS[i % COLORS.length], width: 1.25,
      spanGaps: false, points: { show: false },
    }))),
    axes: [{}, { size: 64, values: (u, vals) => vals.map(tick) }],
    cursor: { drag: { x: true, y: false, setScale: false } },
    plugins: [marksPlugin(marks || {}, el)],
    hooks: {
      setSelect: [(u) => {
        if (!onZoom || u.select.width < 4) return;
        const a = Math.max(0, Math.floor(u.posToVal(u.select.left, "x")));
        const b = Math.ceil(u.posToVal(u.select.left + u.select.width, "x"));
        u.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
        onZoom(a, b);
      }],
    },
  };
  el.replaceChildren();
  const u = new uPlot(opts, data, el);
  S.charts.push(u);
  return u;
}

/* One MoE layer's expert load as a heatmap: rows experts, columns steps.
 * Colour: load relative to an even share (1/experts): blue below, white
 * at even, red above. */
function heatmap(el, layer) {
  const E = layer.experts, B = layer.x.length;
  const c = h("canvas", { class: "heat", width: Math.max(B, 1), height: E,
    "data-testid": "moe-heatmap" });
  c.style.height = Math.max(60, E * 14) + "px";
  const ctx = c.getContext("2d");
  const img = ctx.createImageData(Math.max(B, 1), E);
  for (let e = 0; e < E; e++) {
    for (let b = 0; b < B; b++) {
      const v = plain(layer.load[e][b]);
      const o = 4 * (e * B + b);
      if (v === null) { img.data.set([200, 200, 200, 255], o); continue; }
      const r = Math.max(0, Math.min(2, v * E)); /* 1 = even share */
      const t = r < 1 ? r : r - 1;
      const rgb = r < 1 ? [Math.round(40 + 215 * t), Math.round(90 + 165 * t), 255]
                        : [255, Math.round(255 - 200 * t), Math.round(255 - 200 * t)];
      img.data.set([...rgb, 255], o);
    }
  }
  ctx.putImageData(img, 0, 0);
  el.append(h("h3", {}, `MoE layer ${layer.layer}: expert load (${E} experts)`), c,
    h("div", { class: "legend-note" },
      `steps ${num(layer.x[0])} .. ${num(layer.x[B - 1] + layer.width - 1)}; ` +
      "rows are experts 0.." + (E - 1) + "; blue under an even share, red over"));
  el.dataset.buckets = B;
}

/* ---- pages -------------------------------------------------------------- */

async function pageRuns() {
  const body = await api("/api/runs");
  const rows = body.runs.map((r) => h("tr", { "data-run": r.name },
    h("td", {}, h("a", { href: "#/run/" + encodeURIComponent(r.name) }, r.name)),
    h("td", {}, badge(r.state, r.state === "failed" ? "bad" : "")),
    h("td", { class: "num" }, num(r.step) + (r.total_steps > 0 ? " / " + num(r.total_steps) : "")),
    h("td", { class: "num" }, num(r.loss)),
    h("td", { class: "num" }, num(r.tokens_per_s)),
    h("td", { class: "num" }, pct(r.ett) + " of " + dur(r.wall_s)),
    h("td", { class: "num" }, r.open_incidents ? badge(String(r.open_incidents), "open") : "0")));
  show(h("h1", {}, "Runs"),
    body.runs.length ? h("table", { "data-testid": "runs" },
      h("tr", {}, h("th", {}, "run"), h("th", {}, "state"), h("th", { class: "num" }, "step"),
        h("th", { class: "num" }, "loss"), h("th", { class: "num" }, "tokens/s"),
        h("th", { class: "num" }, "effective training time"),
        h("th", { class: "num" }, "open incidents")), rows)
      : h("p", { class: "muted" }, "No runs yet."));
  every(5000, () => { if (location.hash.startsWith("#/runs") || !location.hash) render(); });
}

const RUN_CHARTS = [
  { title: "loss", names: ["loss", "val_loss"], marks: true },
  { title: "learning rate", names: ["lr"] },
  { title: "grad norm", names: ["grad_norm"] },
  { title: "tokens/s", names: ["tokens_per_s"] },
];

function seriesUrl(run, names, points, from, to) {
  let q = "/api/series?run=" + encodeURIComponent(run) + "&points=" + points;
  for (const n of names) q += "&name=" + encodeURIComponent(n);
  if (from !== undefined) q += "&from=" + from + "&to=" + to;
  return q;
}

/* Two points (a bucket's min and max) per pixel of the chart. */
function pointsFor(el) {
  return Math.min(4000, Math.max(200, 2 * (el.clientWidth || 600)));
}

/* Fetches every chart of a run at once (the server answers them in
 * parallel), then draws them. */
async function drawRunCharts(run, boxes, zoom) {
  const answers = await Promise.all(boxes.map((b) =>
    api(seriesUrl(run, b.spec.names, pointsFor(b.el), zoom && zoom[0], zoom && zoom[1]))));
  boxes.forEach((b, i) => {
    const d = answers[i];
    const series = d.series.filter((s) => s.read > 0)
      .map((s) => ({ label: s.name, x: s.x, y: s.y }));
    if (b.chart) {
      const k = S.charts.indexOf(b.chart);
      if (k >= 0) S.charts.splice(k, 1);
      b.chart.destroy();
      b.chart = null;
    }
    b.zoom = zoom;
    if (!series.length) {
      b.el.replaceChildren(h("p", { class: "muted" }, "no " + b.spec.names.join(", ") + " recorded"));
      b.el.dataset.points = 0;
      return;
    }
    const marks = b.spec.marks ? { incidents: d.incidents, promotions: d.promotions } :
      { promotions: d.promotions };
    b.chart = lineChart(b.el, b.spec.title, series, marks, (a, z) =>
      drawRunCharts(run, boxes, [a, z]).catch((e) => b.el.append(errorBox(e))));
  });
}

function incidentList(incidents) {
  if (!incidents.length) return h("p", { class: "muted" }, "No incidents.");
  return h("table", { "data-testid": "incidents" },
    h("tr", {}, h("th", {}, "#"), h("th", {}, "run"), h("th", {}, "kind"), h("th", {}, "severity"),
      h("th", {}, "state"), h("th", { class: "num" }, "steps"), h("th", { class: "num" }, "count"),
      h("th", {}, "summary and evidence")),
    incidents.map((i) => h("tr", { "data-incident": i.id },
      h("td", {}, String(i.id)),
      h("td", {}, h("a", { href: "#/run/" + encodeURIComponent(i.run) }, i.run)),
      h("td", {}, i.kind), h("td", {}, badge(i.severity)), h("td", {}, badge(i.state)),
      h("td", { class: "num" }, num(i.onset_step) + (i.last_step !== i.onset_step ? ".." + num(i.last_step) : "")),
      h("td", { class: "num" }, num(i.count)),
      h("td", {}, i.summary || "",
        h("details", {}, h("summary", {}, "evidence"),
          h("pre", {}, JSON.stringify(i.evidence, null, 2)),
          i.resolution ? h("p", {}, "resolved: " + i.resolution) : null)))));
}

function runSummary(r) {
  return h("dl", { class: "kv", "data-testid": "run-summary" },
    h("dt", {}, "state"), h("dd", {}, badge(r.state)),
    h("dt", {}, "step"), h("dd", { "data-testid": "run-step" }, num(r.step) + (r.total_steps > 0 ? " / " + num(r.total_steps) : "")),
    h("dt", {}, "loss"), h("dd", {}, num(r.loss)),
    h("dt", {}, "best val loss"), h("dd", {}, num(r.best_val_loss)),
    h("dt", {}, "tokens/s"), h("dd", {}, num(r.tokens_per_s)),
    h("dt", {}, "effective training time"), h("dd", {}, pct(r.ett) + " (" + dur(r.productive_s) + " of " + dur(r.wall_s) + ")"),
    h("dt", {}, "restarts"), h("dd", {}, num(r.restarts) + (r.lost_steps ? `, ${num(r.lost_steps)} steps lost` : "")),
    h("dt", {}, "scaffold"), h("dd", {}, r.scaffold_commit || "-"));
}

async function pageRun(name) {
  const head = h("div", {}, h("p", { class: "muted" }, "reading the run..."));
  const boxes = RUN_CHARTS.map((spec) => ({ spec, el: h("div", { class: "chart", "data-chart": spec.title }) }));
  const moeBox = h("div", { "data-testid": "moe" });
  const incBox = h("div");
  const reset = h("button", { onclick: () => drawRunCharts(name, boxes).catch(console.error) }, "reset zoom");
  show(h("h1", {}, "Run ", h("span", { "data-testid": "run-name" }, name)), head,
    h("div", { class: "actions" }, reset, h("span", { class: "muted" }, "drag across a chart to zoom; the server downsamples each range")),
    h("div", { class: "grid" }, boxes.map((b) => h("div", { class: "card" }, b.el))),
    h("h2", {}, "MoE expert load"), moeBox,
    h("h2", {}, "Incidents"), incBox);
  /* the accounts and the charts each read the whole run: ask for both at once */
  const [info] = await Promise.all([api("/api/run?run=" + encodeURIComponent(name)),
    drawRunCharts(name, boxes)]);
  const r = info.run;
  head.replaceChildren(runSummary(r));
  const moe = await api("/api/moe?run=" + encodeURIComponent(name) + "&points=300");
  if (!moe.layers.length) moeBox.append(h("p", { class: "muted" }, "no MoE load recorded"));
  for (const layer of moe.layers) { const c = h("div", { class: "card" }); moeBox.append(c); heatmap(c, layer); }
  const inc = await api("/api/incidents?run=" + encodeURIComponent(name));
  incBox.replaceChildren(incidentList(inc.incidents));
  if (!r.terminal) {
    /* Live: the loss series is kept downsampled on the server, so asking
     * for it again costs only the rows written since. */
    let last = null;
    every(2000, async () => {
      const probe = await api(seriesUrl(name, ["loss"], pointsFor(boxes[0].el))).catch(() => null);
      if (!probe || !probe.series[0] || probe.series[0].read === last) return;
      const first = last === null;
      last = probe.series[0].read;
      const xs = probe.series[0].x;
      if (xs.length) document.querySelector("[data-testid=run-step]").textContent = num(xs[xs.length - 1]);
      if (!first && !boxes.some((b) => b.zoom)) drawRunCharts(name, boxes).catch(console.error);
    });
  }
}

async function pageIncidents() {
  const body = await api("/api/incidents");
  show(h("h1", {}, "Incidents"), incidentList(body.incidents.slice().reverse()));
}

async function pageProposals() {
  const body = await api("/api/proposals");
  show(h("h1", {}, "Proposals"), body.proposals.length ? h("table", { "data-testid": "proposals" },
    h("tr", {}, h("th", {}, "#"), h("th", {}, "state"), h("th", {}, "incident"), h("th", {}, "proposer"),
      h("th", {}, "diagnosis"), h("th", {}, "created")),
    body.proposals.slice().reverse().map((p) => h("tr", { "data-proposal": p.id },
      h("td", {}, h("a", { href: "#/proposal/" + p.id }, "#" + p.id)),
      h("td", {}, badge(p.state)),
      h("td", {}, p.incident_id ? String(p.incident_id) : "-"),
      h("td", {}, p.proposer + (p.model ? " (" + p.model + ")" : "")),
      h("td", {}, p.diagnosis || ""),
      h("td", {}, when(p.created_t))))) : h("p", { class: "muted" }, "No proposals yet."));
}

/* A unified diff as a two-column table: old on the left, new on the right.
 * Inside a hunk the line counts of its header decide what a line is, so a
 * removed line that reads "-- comment" is not taken for a file header. */
function sideBySide(diff) {
  const rows = [];
  let ln = 0, rn = 0, oldLeft = 0, newLeft = 0, dels = [], adds = [];
  const flush = () => {
    for (let i = 0; i < Math.max(dels.length, adds.length); i++) {
      const d = dels[i], a = adds[i];
      rows.push(h("tr", {},
        h("td", { class: "ln" }, d ? String(d[0]) : ""), h("td", { class: d ? "del" : "" }, d ? d[1] : ""),
        h("td", { class: "ln" }, a ? String(a[0]) : ""), h("td", { class: a ? "add" : "" }, a ? a[1] : "")));
    }
    dels = []; adds = [];
  };
  for (const line of (diff || "").split("\n")) {
    if (oldLeft > 0 || newLeft > 0) {
      if (line.startsWith("\\")) continue; /* "\ No newline at end of file" */
      const c = line[0], text = line.slice(1);
      if (c === "-" && oldLeft > 0) { dels.push([ln++, text]); oldLeft--; continue; }
      if (c === "+" && newLeft > 0) { adds.push([rn++, text]); newLeft--; continue; }
      flush();
      rows.push(h("tr", {}, h("td", { class: "ln" }, String(ln++)), h("td", {}, text),
        h("td", { class: "ln" }, String(rn++)), h("td", {}, text)));
      oldLeft--; newLeft--;
      continue;
    }
    flush();
    const m = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@/.exec(line);
    if (m) {
      ln = +m[1]; oldLeft = m[2] === undefined ? 1 : +m[2];
      rn = +m[3]; newLeft = m[4] === undefined ? 1 : +m[4];
      rows.push(h("tr", { class: "hunk" }, h("td", { colspan: 4 }, line)));
    } else if (line.startsWith("+++ ")) {
      rows.push(h("tr", { class: "file" }, h("td", { colspan: 4 }, line.slice(4).replace(/^b\//, ""))));
    }
  }
  flush();
  return h("table", { class: "diff", "data-testid": "diff" },
    h("colgroup", {}, h("col", { style: "width:44px" }), h("col"), h("col", { style: "width:44px" }), h("col")),
    rows);
}

/* The gate table: the first array named rows whose items have name and pass. */
function findRows(v) {
  if (!v || typeof v !== "object") return null;
  if (Array.isArray(v.rows) && v.rows.length && v.rows.every((r) => r && "name" in r && "pass" in r)) return v;
  for (const k of Object.keys(v)) { const f = findRows(v[k]); if (f) return f; }
  return null;
}

function gateTable(ev) {
  const g = findRows(ev.figures);
  const head = h("p", {}, `evaluation #${ev.id} (${ev.stage}): `, badge(ev.verdict || ev.state, ev.verdict || ""),
    " ", ev.reason || "");
  if (!g) return h("div", {}, head, h("pre", {}, JSON.stringify(ev.figures, null, 2)));
  return h("div", {}, head, h("table", { "data-testid": "gates" },
    h("tr", {}, h("th", {}, "gate"), h("th", { class: "num" }, "baseline"), h("th", { class: "num" }, "candidate"),
      h("th", {}, "bound"), h("th", {}, "result")),
    g.rows.map((r) => h("tr", {}, h("td", {}, r.name), h("td", { class: "num" }, String(r.baseline ?? "-")),
      h("td", { class: "num" }, String(r.candidate ?? "-")), h("td", {}, String(r.bound ?? "")),
      h("td", {}, badge(r.pass ? "pass" : "fail"))))));
}

async function overlay(ev, box) {
  if (!ev.baseline_run || !ev.candidate_run) return;
  for (const metric of ["loss", "val_loss"]) {
    const el = h("div", { class: "chart", "data-chart": "overlay-" + metric });
    box.append(h("div", { class: "card" }, el));
    const [a, b] = await Promise.all([ev.baseline_run, ev.candidate_run].map((run) =>
      api(seriesUrl(run, [metric], 1200))));
    const sa = a.series[0], sb = b.series[0];
    if (!sa.read && !sb.read) { el.append(h("p", { class: "muted" }, "no " + metric)); continue; }
    lineChart(el, `${metric}: ${ev.baseline_run} (baseline) vs ${ev.candidate_run} (candidate)`,
      [{ label: "baseline", x: sa.x, y: sa.y, color: "#6b7280" },
       { label: "candidate", x: sb.x, y: sb.y, color: "#1f5fbf" }]);
  }
}

async function act(id, what, payload, out) {
  out.textContent = what + "...";
  try {
    const r = await post(`/api/proposals/${id}/${what}`, payload);
    out.textContent = (r.ok ? what + " done" : what + " failed (exit " + r.exit_status + ")") +
      "\n" + (r.output || "");
    out.className = r.ok ? "" : "error";
    out.dataset.ok = r.ok ? "1" : "0";
  } catch (e) {
    out.textContent = what + " refused: " + e.message;
    out.className = "error";
    out.dataset.ok = "0";
  }
}

async function pageProposal(id) {
  const d = await api("/api/proposals/" + id);
  const p = d.proposal;
  const out = h("pre", { "data-testid": "action-output" }, "");
  const reason = h("input", { type: "text", placeholder: "reason for rejecting", "data-testid": "reject-reason" });
  const approve = h("button", { class: "primary", "data-testid": "approve", disabled: S.readOnly,
    onclick: async () => { await act(p.id, "approve", {}, out); refreshAfter(); } }, "Approve");
  const reject = h("button", { class: "danger", "data-testid": "reject", disabled: S.readOnly,
    onclick: async () => {
      if (!reason.value.trim()) { out.textContent = "give a reason to reject"; return; }
      await act(p.id, "reject", { reason: reason.value.trim() }, out); refreshAfter();
    } }, "Reject");
  const refreshAfter = async () => {
    const now = await api("/api/proposals/" + id).catch(() => null);
    if (now) state.replaceChildren(badge(now.proposal.state));
  };
  const state = h("span", { "data-testid": "proposal-state" }, badge(p.state));
  const curves = h("div", { class: "grid" });
  show(h("h1", {}, `Proposal #${p.id} `, state),
    h("dl", { class: "kv" },
      h("dt", {}, "incident"), h("dd", {}, d.incident ? `#${d.incident.id} ${d.incident.kind} on ${d.incident.run}: ${d.incident.summary || ""}` : "-"),
      h("dt", {}, "proposer"), h("dd", {}, p.proposer + (p.model ? " (" + p.model + ")" : "")),
      h("dt", {}, "confidence"), h("dd", {}, p.confidence === null ? "-" : pct(p.confidence)),
      h("dt", {}, "branch"), h("dd", {}, (p.branch || "-") + (p.commit ? " @ " + p.commit.slice(0, 12) : "")),
      p.reject_reason ? [h("dt", {}, "rejected"), h("dd", {}, p.reject_reason)] : null),
    h("h2", {}, "Diagnosis"), h("p", { "data-testid": "diagnosis" }, p.diagnosis || "-"),
    p.rationale ? [h("h2", {}, "Rationale"), h("p", {}, p.rationale)] : null,
    p.expected_effect ? [h("h2", {}, "Expected effect"), h("p", {}, p.expected_effect)] : null,
    h("h2", {}, "Change"), sideBySide(p.diff),
    h("h2", {}, "Gates"), d.evaluations.length ? d.evaluations.map(gateTable) : h("p", { class: "muted" }, "Not evaluated yet."),
    h("h2", {}, "Baseline and candidate"), curves,
    d.promotions.length ? [h("h2", {}, "Promotions"), h("ul", {}, d.promotions.map((m) =>
      h("li", {}, `${when(m.t)}: ${m.commit} merged as ${m.merged_commit || "-"}, approved by ${m.approved_by}`)))] : null,
    h("div", { class: "actions" }, approve, reject, reason,
      S.readOnly ? h("span", { class: "muted" }, "read-only server: start it with --writable to act") : null),
    out);
  for (const ev of d.evaluations) await overlay(ev, curves);
}

async function pageAudit() {
  const verdict = h("div", { "data-testid": "audit-verify" }, "verifying...");
  const list = h("div", { class: "timeline", "data-testid": "audit" });
  show(h("h1", {}, "Audit"), verdict, h("div", { class: "actions" },
    h("button", { onclick: () => verify(verdict) }, "verify again")), list);
  let since = 0, rows = [];
  for (;;) {
    const page = await api("/api/audit?since=" + since + "&limit=1000");
    rows = rows.concat(page.rows);
    since = page.next;
    if (!page.more) break;
  }
  list.replaceChildren(...rows.slice().reverse().map((a) => h("div", {
    class: "row" + (/promot/.test(a.action) ? " promotion" : ""), "data-action": a.action },
    h("span", {}, "#" + a.seq), h("span", {}, when(a.t)), h("span", {}, a.actor),
    h("span", {}, a.action), h("span", {}, a.subject || "",
      a.detail ? h("details", {}, h("summary", {}, "detail"), h("pre", {}, JSON.stringify(a.detail, null, 2))) : null))));
  if (!rows.length) list.append(h("p", { class: "muted" }, "The audit log is empty."));
  await verify(verdict);
}

async function verify(box) {
  box.textContent = "verifying...";
  try {
    const v = await api("/api/audit/verify");
    box.replaceChildren(badge(v.ok ? "chain intact" : "chain broken", v.ok ? "ok" : "bad"),
      " ", h("span", { class: "muted" }, `${v.command}` + (v.exit_status !== null ? `, exit ${v.exit_status}` : "")),
      h("pre", {}, v.output || ""));
    box.dataset.ok = v.ok ? "1" : "0";
  } catch (e) {
    box.replaceChildren(errorBox(e));
  }
}

function pageToken(msg) {
  const input = h("input", { type: "password", placeholder: "token", "data-testid": "token" });
  show(h("h1", {}, "Token needed"), h("p", {}, msg),
    h("form", { onsubmit: (e) => {
      e.preventDefault();
      S.token = input.value.trim();
      sessionStorage.setItem("tend.token", S.token);
      start();
    } }, input, " ", h("button", { class: "primary" }, "Use token")));
}

/* ---- routing ------------------------------------------------------------ */

async function render() {
  const hash = location.hash || "#/runs";
  const parts = hash.slice(2).split("/");
  const page = parts[0], arg = decodeURIComponent(parts.slice(1).join("/"));
  cleanup();
  const t0 = performance.now();
  document.querySelectorAll("nav a").forEach((a) =>
    a.classList.toggle("active", a.dataset.nav === page || (page === "run" && a.dataset.nav === "runs") ||
      (page === "proposal" && a.dataset.nav === "proposals")));
  try {
    if (page === "run" && arg) await pageRun(arg);
    else if (page === "incidents") await pageIncidents();
    else if (page === "proposals") await pageProposals();
    else if (page === "proposal" && /^\d+$/.test(arg)) await pageProposal(arg);
    else if (page === "audit") await pageAudit();
    else await pageRuns();
    document.body.dataset.renderMs = Math.round(performance.now() - t0);
    document.body.dataset.ready = hash;
  } catch (e) {
    if (e.status === 401) return pageToken(e.message);
    show(errorBox(e));
    document.body.dataset.ready = hash;
  }
}

async function start() {
  /* a token may also come in the URL fragment, which is never sent */
  const m = /[#&]token=([^&]+)/.exec(location.hash);
  if (m) {
    S.token = decodeURIComponent(m[1]);
    sessionStorage.setItem("tend.token", S.token);
    history.replaceState(null, "", location.pathname + "#/runs");
  }
  try {
    const s = await api("/api/session");
    S.csrf = s.csrf;
    S.readOnly = s.read_only;
    document.getElementById("mode").textContent =
      `${s.workspace} · tend ${s.version} · ${s.read_only ? "read-only" : "approvals enabled"}`;
  } catch (e) {
    if (e.status === 401) return pageToken(e.message);
    return show(errorBox(e));
  }
  if (!S.started) window.addEventListener("hashchange", render);
  S.started = true;
  render();
}

start();
