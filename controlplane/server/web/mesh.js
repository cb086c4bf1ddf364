// The mesh graph: polls /debug/graph and draws workloads, services and the calls between
// them (SVG, laid out in columns by call depth). No library, no build step.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const POLL_MS = 2000;

function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function fmt(n, digits) { return n === null || n === undefined ? "–" : Number(n).toFixed(digits); }

function edgeLabel(e) {
  const unit = e.protocol === "tcp" ? "conn/s" : "rps";
  const p99 = e.p99_ms === null ? "" : ` · p99 ${fmt(e.p99_ms, 1)} ms`;
  return `${fmt(e.rate, 2)} ${unit} · ${fmt(e.error_percent, 1)}% err${p99}`;
}

// Columns: a node's depth is its longest path from a node nobody calls.
function layout(nodes, edges, width, height) {
  const into = new Map(nodes.map(n => [n.id, []]));
  for (const e of edges) if (into.has(e.target)) into.get(e.target).push(e.source);
  const depth = new Map();
  const visiting = new Set();
  function d(id) {
    if (depth.has(id)) return depth.get(id);
    if (visiting.has(id)) return 0;  // a cycle: cut it
    visiting.add(id);
    let best = 0;
    for (const src of into.get(id) || []) best = Math.max(best, d(src) + 1);
    visiting.delete(id);
    depth.set(id, best);
    return best;
  }
  nodes.forEach(n => d(n.id));
  const columns = [];
  for (const n of nodes) (columns[depth.get(n.id)] = columns[depth.get(n.id)] || []).push(n);
  const pos = new Map();
  const dx = width / (columns.length + 1);
  columns.forEach((col, i) => {
    const dy = height / (col.length + 1);
    col.forEach((n, j) => pos.set(n.id, { x: dx * (i + 1), y: dy * (j + 1) }));
  });
  return pos;
}

function drawLock(parent, x, y) {
  const g = el("g", { class: "lock", transform: `translate(${x - 5},${y - 14})` }, parent);
  el("path", { d: "M2,6 V3.5 A3,3 0 0 1 8,3.5 V6" }, g);
  el("rect", { x: 0, y: 6, width: 10, height: 7, rx: 1 }, g);
  el("title", {}, g).textContent = "mutual TLS";
}

function drawGraph(graph) {
  const svg = document.getElementById("graph");
  const box = svg.getBoundingClientRect();
  const width = box.width || 900, height = box.height || 560;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 20, refY: 5, markerWidth: 7,
    markerHeight: 7, orient: "auto-start-reverse" }, el("defs", {}, svg));
  el("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#8c959f" }, marker);
  const pos = layout(graph.nodes, graph.edges, width, height);
  for (const e of graph.edges) {
    const a = pos.get(e.source), b = pos.get(e.target);
    if (!a || !b) continue;
    const state = e.rate === 0 ? " idle" : e.error_percent > 0 ? " errors" : "";
    const g = el("g", { class: "edge" + state, "data-source": e.source,
      "data-target": e.target, "data-rate": e.rate, "data-mtls": e.mtls }, svg);
    el("line", { x1: a.x, y1: a.y, x2: b.x, y2: b.y, "marker-end": "url(#arrow)" }, g);
    const mx = (a.x + b.x) / 2, my = (a.y + b.y) / 2;
    const label = el("text", { class: "label", x: mx, y: my - 4, "text-anchor": "middle" }, g);
    label.textContent = edgeLabel(e);
    if (e.mtls) drawLock(g, mx, my - 16);
  }
  for (const n of graph.nodes) {
    const p = pos.get(n.id);
    const g = el("g", { class: `node ${n.kind}`, "data-id": n.id, transform: `translate(${p.x},${p.y})` }, svg);
    if (n.kind === "workload") el("circle", { r: 11 }, g);
    else el("rect", { x: -9, y: -9, width: 18, height: 18, transform: "rotate(45)" }, g);
    const t = el("text", { y: 26, "text-anchor": "middle" }, g);
    t.textContent = n.kind === "service" ? n.name.split(".").slice(0, 2).join(".") : n.name;
    el("title", {}, g).textContent = n.id;
  }
}

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function drawEdges(graph) {
  const body = document.querySelector("#edges tbody");
  body.replaceChildren();
  for (const e of graph.edges) {
    const row = body.insertRow();
    row.className = "edge" + (e.error_percent > 0 ? " error" : "");
    Object.assign(row.dataset, { source: e.source, target: e.target, rate: e.rate,
      errorPercent: e.error_percent, mtls: e.mtls });
    cell(row, e.source); cell(row, e.target); cell(row, e.protocol);
    cell(row, fmt(e.rate, 2), "num rate"); cell(row, fmt(e.error_percent, 1) + " %", "num errors");
    cell(row, e.p99_ms === null ? "–" : fmt(e.p99_ms, 1) + " ms", "num p99");
    cell(row, e.mtls ? "mutual_tls" : "none", e.mtls ? "mtls on" : "mtls");
  }
}

function drawProxies(proxies) {
  const body = document.querySelector("#proxies tbody");
  body.replaceChildren();
  for (const p of proxies) {
    const row = body.insertRow();
    row.className = "proxy";
    row.dataset.proxy = p.proxy;
    cell(row, p.proxy);
    cell(row, p.spiffe_id || "–");
    const sync = row.insertCell();
    for (const [type, state] of Object.entries(p.types)) {
      const span = document.createElement("span");
      span.className = "state-" + String(state).replace(" ", "_");
      span.textContent = `${type.replace(/^(Cluster|ClusterLoadAssignment|Listener|RouteConfiguration|Secret|TypedExtensionConfig)$/, m =>
        ({ Cluster: "CDS", ClusterLoadAssignment: "EDS", Listener: "LDS", RouteConfiguration: "RDS", Secret: "SDS",
           TypedExtensionConfig: "ECDS" })[m])}:${state} `;
      sync.appendChild(span);
    }
    const link = document.createElement("a");
    link.href = p.config_dump;
    link.textContent = "config dump";
    row.insertCell().appendChild(link);
  }
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const response = await fetch("/debug/graph", { cache: "no-store" });
    const data = await response.json();
    drawGraph(data.graph);
    drawEdges(data.graph);
    drawProxies(data.proxies);
    const when = new Date().toLocaleTimeString();
    status.textContent = `${data.graph.edges.length} calls · ${data.proxies.length} proxies · from ${data.source} · ${when}` +
      (data.error ? ` · ${data.error}` : "");
    document.body.dataset.loaded = "true";
  } catch (err) {
    status.textContent = "cannot read /debug/graph: " + err;
  }
}

refresh();
setInterval(refresh, POLL_MS);
