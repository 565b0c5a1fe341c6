// The ethgw operator dashboard: polls GET /admin/dashboard every second and draws it.
// No library, no build step. Every value from the server goes in as text (textContent or an
// attribute), never as markup, and the page's CSP allows only this script.
"use strict";

const KEY_STORE = "ethgw.adminKey"; // sessionStorage: this tab only, gone when it closes
const POLL_MS = 1000;
const SVG_NS = "http://www.w3.org/2000/svg";
const BUSY_STATES = new Set(["draining", "restarting", "syncing"]);

const $ = (id) => document.getElementById(id);
let apiKey = sessionStorage.getItem(KEY_STORE) || "";
let pollTimer = null;
let polling = false; // a call is out: a key entered meanwhile must not start a second loop

// -- helpers ---------------------------------------------------------------------------------

function svg(tag, attrs = {}, text = null) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  if (text !== null) el.textContent = text;
  return el;
}

function el(tag, attrs = {}, text = null) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

const fixed = (value, digits = 3) => (value === null || value === undefined ? "-" : Number(value).toFixed(digits));
const clock = (seconds) => new Date(seconds * 1000).toLocaleTimeString([], { hour12: false });

async function call(method, path) {
  const response = await fetch(path, {
    method,
    headers: { "X-API-Key": apiKey, Accept: "application/json" },
    cache: "no-store",
  });
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  return { status: response.status, body };
}

// -- the key ---------------------------------------------------------------------------------

function showLogin(message) {
  $("board").hidden = true;
  $("forget").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  setStatus("not connected", "");
}

function showBoard() {
  $("login").hidden = true;
  $("board").hidden = false;
  $("forget").hidden = false;
}

function forgetKey(message) {
  apiKey = "";
  sessionStorage.removeItem(KEY_STORE);
  if (pollTimer !== null) clearTimeout(pollTimer);
  pollTimer = null;
  showLogin(message);
}

function setStatus(text, kind) {
  const status = $("status");
  status.textContent = text;
  status.className = "status" + (kind ? " " + kind : "");
}

// -- polling ---------------------------------------------------------------------------------

async function poll() {
  pollTimer = null;
  if (!apiKey || polling) return;
  polling = true;
  try {
    const { status, body } = await call("GET", "/admin/dashboard");
    if (status === 401 || status === 403) {
      forgetKey((body && body.message) || "the key was refused");
      return;
    }
    if (status !== 200 || !body || !body.data) {
      setStatus(`gateway answered ${status}: ${(body && body.message) || "no data"}`, "error");
    } else {
      showBoard();
      render(body.data);
    }
  } catch (error) {
    setStatus("cannot reach the gateway", "error");
  } finally {
    polling = false;
  }
  if (apiKey && pollTimer === null) pollTimer = setTimeout(poll, POLL_MS);
}

function render(data) {
  const cluster = data.cluster;
  const paused = cluster.paused;
  setStatus(
    `updated ${clock(data.now)} · LBH ${fixed(cluster.lbh)} · ` +
      (paused ? "PAUSED (LBH < 0)" : "dispatching") +
      ` · head ${cluster.head ?? "-"}`,
    paused ? "paused" : ""
  );
  drawPlane(cluster);
  drawLbh(data.lbh, cluster, data.now, data.missing.lbh);
  drawTraffic(data.gateway, data.kafka);
  drawNodes(cluster.nodes);
  $("inflight-note").textContent = inflightNote(data.providers);
  $("cache-note").textContent = cacheNote(data.providers.cache);
  drawEvents(data.events, data.missing.events);
}

// -- the state plane (thesis figure 3.5) -----------------------------------------------------

const PLANE = { left: 62, top: 14, size: 330 };
const EXTENTS = [0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1];

// The plane shows [0, extent] on both axes: the whole unit square when the bounds need it,
// zoomed in when the bounds and the nodes are all near the origin (else a calibration of
// small distances would be a dot in a corner).
function planeExtent(cluster) {
  let reach = cluster.dis_avemax;
  for (const node of cluster.nodes) {
    if (node.zone !== "DOWN") reach = Math.max(reach, node.memory, node.cpu);
  }
  return EXTENTS.find((extent) => extent >= reach * 1.15) ?? 1;
}

function drawPlane(cluster) {
  const plane = $("plane");
  plane.replaceChildren();
  const { left, top, size } = PLANE;
  const extent = planeExtent(cluster);
  const scale = size / extent;
  const x = (memory) => left + Math.min(extent, Math.max(0, memory)) * scale;
  const y = (cpu) => top + size - Math.min(extent, Math.max(0, cpu)) * scale;
  const originX = x(0);
  const originY = y(0);

  const defs = svg("defs");
  const clip = svg("clipPath", { id: "plane-clip" });
  clip.append(svg("rect", { x: left, y: top, width: size, height: size }));
  defs.append(clip);
  plane.append(defs);

  // Zones: III everywhere, II inside Dis_avemax, I inside Dis_ave (a boundary is the lower zone).
  const zones = svg("g", { "clip-path": "url(#plane-clip)" });
  zones.append(svg("rect", { x: left, y: top, width: size, height: size, class: "zone3" }));
  zones.append(svg("circle", { cx: originX, cy: originY, r: cluster.dis_avemax * scale, class: "zone2" }));
  zones.append(svg("circle", { cx: originX, cy: originY, r: cluster.dis_ave * scale, class: "zone1" }));
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => f * extent);
  for (const tick of ticks.slice(1, -1)) {
    zones.append(svg("line", { x1: x(tick), y1: top, x2: x(tick), y2: top + size, class: "grid" }));
    zones.append(svg("line", { x1: left, y1: y(tick), x2: left + size, y2: y(tick), class: "grid" }));
  }
  zones.append(svg("circle", { cx: originX, cy: originY, r: cluster.dis_avemax * scale, class: "bound" }));
  zones.append(svg("circle", { cx: originX, cy: originY, r: cluster.dis_ave * scale, class: "bound" }));
  plane.append(zones);

  // Zone names along the diagonal, in the middle of each band when it is wide enough to read.
  const bands = [
    ["I", 0, cluster.dis_ave],
    ["II", cluster.dis_ave, cluster.dis_avemax],
    ["III", cluster.dis_avemax, Math.SQRT2 * extent],
  ];
  for (const [name, inner, outer] of bands) {
    const middle = Math.min((inner + outer) / 2, 1.25 * extent);
    const along = middle / Math.SQRT2;
    if ((outer - inner) * scale > 28 && along <= 0.95 * extent) {
      plane.append(svg("text", { x: x(along) - 6, y: y(along) + 6, class: "zone-label" }, name));
    }
  }
  // The two circles, labelled where they meet the axes (or the top edge).
  boundLabel(plane, "Dis_ave", cluster.dis_ave, extent, x, y, -1);
  boundLabel(plane, "Dis_avemax", cluster.dis_avemax, extent, x, y, 1);

  plane.append(svg("line", { x1: left, y1: top + size, x2: left + size, y2: top + size, class: "axis" }));
  plane.append(svg("line", { x1: left, y1: top, x2: left, y2: top + size, class: "axis" }));
  for (const tick of ticks) {
    const label = String(Number(tick.toFixed(4))); // 0.025, 0.0625, 0.5: as many digits as needed
    plane.append(svg("text", { x: x(tick) - 10, y: top + size + 14 }, label));
    plane.append(svg("text", { x: left - 44, y: y(tick) + 4 }, label));
  }
  const zoom = extent < 1 ? ` (zoomed: 0 to ${extent})` : "";
  plane.append(svg("text", { x: left + size / 2 - 70, y: top + size + 32 }, `memory ratio${zoom}`));
  plane.append(svg("text", { x: 12, y: top + size / 2 + 26, transform: `rotate(-90 12 ${top + size / 2 + 26})` }, "CPU ratio"));

  const down = [];
  const placed = [];
  for (const node of cluster.nodes) {
    if (node.zone === "DOWN") {
      const why = node.status === "down" ? node.down_reason || "down" : node.status;
      down.push(`${node.node_id} (${why})`);
      continue;
    }
    const group = svg("g", { class: "node", "data-node": node.node_id });
    const cx = x(node.memory);
    const cy = y(node.cpu);
    const point = svg("circle", {
      cx, cy, r: 7, class: "node-point", "data-node": node.node_id, "data-zone": node.zone,
    });
    point.append(svg("title", {}, `${node.node_id}: zone ${node.zone}, d ${fixed(node.distance)}`));
    group.append(point);
    const [labelX, labelY] = placeLabel(placed, cx, cy, left + size, top);
    group.append(svg("text", { x: labelX, y: labelY, class: "node-label" }, `${node.node_id} ${node.zone}`));
    plane.append(group);
  }
  $("down-nodes").textContent = down.length ? `Not in the plane (DOWN): ${down.join(", ")}` : "";
}

// Idle nodes sit almost on one spot: each label goes beside its point, moved down a line
// while it would overlap a label already placed.
const LABEL_W = 80, LABEL_H = 13;

function placeLabel(placed, cx, cy, right, top) {
  const x = cx > right - LABEL_W ? cx - LABEL_W - 4 : cx + 10;
  let y = cy < top + LABEL_H ? cy + 16 : cy - 8;
  while (placed.some(([px, py]) => Math.abs(px - x) < LABEL_W && Math.abs(py - y) < LABEL_H)) {
    y += LABEL_H;
  }
  placed.push([x, y]);
  return [x, y];
}

function boundLabel(plane, name, radius, extent, x, y, side) {
  const text = `${name} ${radius.toFixed(3)}`;
  if (radius <= extent) {
    // Dis_ave where its circle meets the memory axis, Dis_avemax where it meets the CPU axis.
    const attrs = side < 0 ? { x: x(radius) + 3, y: y(0) - 4 } : { x: x(0) + 4, y: y(radius) - 4 };
    plane.append(svg("text", { ...attrs, class: "bound-label" }, text));
  } else {
    const along = Math.sqrt(Math.max(0, radius * radius - extent * extent));
    plane.append(svg("text", { x: x(Math.min(extent, along)) - 70, y: y(extent) + 12, class: "bound-label" }, text));
  }
}

// -- LBH over time, paused periods shaded ----------------------------------------------------

function drawLbh(lbh, cluster, now, missing) {
  const chart = $("lbh");
  chart.replaceChildren();
  const left = 46, top = 10, width = 500, height = 180;
  const points = lbh.points;
  const first = points.length ? points[0][0] : now - 60;
  const start = Math.min(first, now - 60);
  const span = Math.max(60, now - start);
  $("lbh-span").textContent = `last ${Math.round(span / 60 * 10) / 10} min; shaded: paused (LBH < 0)`;
  const values = points.map((p) => p[1]);
  const low = Math.min(-0.1, ...values);
  const high = Math.max(0.1, ...values);
  const pad = (high - low) * 0.08;
  const yMin = low - pad, yMax = high + pad;
  const x = (t) => left + ((t - (now - span)) / span) * width;
  const y = (v) => top + height - ((v - yMin) / (yMax - yMin)) * height;

  for (const [pauseStart, pauseEnd] of lbh.pauses) {
    const x1 = Math.max(left, x(pauseStart));
    const x2 = x(pauseEnd ?? now);
    chart.append(svg("rect", { x: x1, y: top, width: Math.max(2, x2 - x1), height, class: "pause" }));
  }
  chart.append(svg("line", { x1: left, y1: top + height, x2: left + width, y2: top + height, class: "axis" }));
  chart.append(svg("line", { x1: left, y1: top, x2: left, y2: top + height, class: "axis" }));
  chart.append(svg("line", { x1: left, y1: y(0), x2: left + width, y2: y(0), class: "zero" }));
  for (const value of [yMin + pad, 0, yMax - pad]) {
    chart.append(svg("text", { x: 2, y: y(value) + 4 }, value.toFixed(2)));
  }
  chart.append(svg("text", { x: left, y: top + height + 16 }, clock(now - span)));
  chart.append(svg("text", { x: left + width - 48, y: top + height + 16 }, clock(now)));
  if (points.length) {
    const line = points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
    chart.append(svg("polyline", { points: line, class: "lbh-line" }));
  }
  chart.append(svg("text", { x: left + 6, y: top + 12 }, `LBH now ${fixed(cluster.lbh)}`));
  if (missing) chart.append(svg("text", { x: left + 6, y: top + 28 }, `no history: ${missing}`));
}

// -- gateway traffic and Kafka ---------------------------------------------------------------

function drawTraffic(gateway, kafka) {
  $("rps").textContent = gateway.requests_per_s.toFixed(1);
  $("p50").textContent = gateway.latency_p50_ms === null ? "-" : `${gateway.latency_p50_ms.toFixed(1)} ms`;
  $("p95").textContent = gateway.latency_p95_ms === null ? "-" : `${gateway.latency_p95_ms.toFixed(1)} ms`;
  $("eps").textContent = gateway.errors_per_s.toFixed(1);
  $("lag").textContent = kafka.total === null ? "n/a" : String(kafka.total);
  $("lag-detail").textContent =
    kafka.error !== null
      ? `Kafka lag unavailable: ${kafka.error}`
      : `consumer group ${kafka.group}: ` +
        Object.entries(kafka.topics).map(([topic, lag]) => `${topic} ${lag}`).join(", ") +
        ` · rate and latency over the last ${gateway.window_s} s of /api and /rpc calls`;

  const chart = $("rate");
  chart.replaceChildren();
  const left = 46, top = 6, width = 500, height = 48;
  const history = gateway.history.slice(-120);
  const peak = Math.max(1, ...history.map((h) => h[1]));
  chart.append(svg("line", { x1: left, y1: top + height, x2: left + width, y2: top + height, class: "axis" }));
  chart.append(svg("text", { x: 2, y: top + 10 }, `${peak}/s`));
  chart.append(svg("text", { x: 2, y: top + height + 12 }, "requests, last 2 min"));
  if (history.length > 1) {
    const x = (i) => left + (i / 119) * width;
    const offset = 120 - history.length;
    const line = history
      .map((h, i) => `${x(i + offset).toFixed(1)},${(top + height - (h[1] / peak) * height).toFixed(1)}`)
      .join(" ");
    chart.append(svg("polyline", { points: line, class: "rate-line" }));
  }
}

// -- the node table, updated in place so a button under the pointer stays the same element ----

function drawNodes(nodes) {
  const body = document.querySelector("#nodes tbody");
  const seen = new Set();
  for (const node of nodes) {
    seen.add(node.node_id);
    let row = body.querySelector(`tr[data-node="${CSS.escape(node.node_id)}"]`);
    if (!row) row = newRow(body, node.node_id);
    row.setAttribute("data-zone", node.zone);
    row.setAttribute("data-state", node.status);
    const cells = row.cells;
    cells[1].textContent = node.status;
    cells[1].className = `state state-${node.status}`;
    cells[2].textContent = node.zone;
    cells[3].textContent = fixed(node.distance);
    cells[4].textContent = fixed(node.memory);
    cells[5].textContent = fixed(node.cpu);
    cells[6].textContent = node.in_flight === null || node.in_flight === undefined ? "-" : String(node.in_flight);
    cells[7].textContent = node.block === null ? "-" : `${node.block} (${node.lag ?? "-"})`;
    cells[8].textContent = String(node.restarts);
    const restart = row.querySelector("button.restart");
    const cordon = row.querySelector("button.cordon");
    restart.disabled = BUSY_STATES.has(node.status);
    cordon.textContent = node.cordoned ? "Uncordon" : "Cordon";
    cordon.dataset.action = node.cordoned ? "uncordon" : "cordon";
  }
  for (const row of [...body.rows]) {
    if (!seen.has(row.dataset.node)) row.remove();
  }
}

function inflightNote(providers) {
  if (!providers.configured) return "in-flight: no provider configured (ETHGW_GATEWAY_PROVIDER_URLS)";
  if (providers.answered === null) return "in-flight: reading the providers...";
  const failed = providers.failed.length ? `; not answering: ${providers.failed.join(", ")}` : "";
  return `in-flight: tasks dispatched and not finished, summed over ${providers.answered} of ${providers.configured} providers${failed}`;
}

// The providers' read caches (immutable answers) and reads joined in flight: hit ratio each.
function cacheNote(caches) {
  const names = Object.keys(caches || {});
  if (!names.length) return "read cache: no reads yet";
  const parts = names.map((name) => {
    const cache = caches[name];
    const ratio = cache.hit_ratio === null ? "-" : `${Math.round(cache.hit_ratio * 100)}%`;
    return `${name} ${ratio} (${cache.hits}/${cache.hits + cache.misses})`;
  });
  return `read cache hits: ${parts.join(" · ")}`;
}

function newRow(body, nodeId) {
  const row = el("tr", { "data-node": nodeId });
  row.append(el("td", { class: "node-id" }, nodeId));
  for (const name of ["state", "zone", "distance", "memory", "cpu", "inflight", "block", "restarts"]) {
    row.append(el("td", { class: name }));
  }
  const actions = el("td", { class: "actions" });
  const restart = el("button", { type: "button", class: "restart" }, "Restart");
  restart.addEventListener("click", () =>
    act(nodeId, "restart", `Restart ${nodeId}? It is drained, restarted and resynced (about 15 s).`)
  );
  const cordon = el("button", { type: "button", class: "cordon", "data-action": "cordon" }, "Cordon");
  cordon.addEventListener("click", () => {
    const action = cordon.dataset.action;
    const question =
      action === "cordon"
        ? `Cordon ${nodeId}? It takes no task until it is uncordoned.`
        : `Uncordon ${nodeId}? It takes tasks again.`;
    act(nodeId, action, question);
  });
  actions.append(restart, cordon);
  row.append(actions);
  body.append(row);
  return row;
}

async function act(nodeId, action, question) {
  if (!window.confirm(question)) {
    $("action-result").textContent = `${action} ${nodeId}: cancelled`;
    return;
  }
  $("action-result").textContent = `${action} ${nodeId}: sent...`;
  try {
    const { status, body } = await call("POST", `/admin/nodes/${encodeURIComponent(nodeId)}/${action}`);
    const message = (body && body.message) || `HTTP ${status}`;
    let shown = `${action} ${nodeId} refused: ${message}`;
    if (status < 300) {
      // A restart is accepted at once and goes on in the manager: its steps are events.
      shown = action === "restart" ? `restart ${nodeId} accepted: its steps appear in Recent events` : message;
    }
    $("action-result").textContent = shown;
  } catch (error) {
    $("action-result").textContent = `${action} ${nodeId}: the gateway cannot be reached`;
  }
}

// -- events ----------------------------------------------------------------------------------

function drawEvents(events, missing) {
  const list = $("events");
  list.replaceChildren();
  for (const event of events) {
    const item = el("li", { "data-kind": event.kind, "data-node": event.node, "data-reason": event.reason || "" });
    item.append(
      el("span", { class: "time" }, clock(event.time)),
      el("span", { class: "node" }, event.node),
      el("span", { class: "kind" }, event.kind),
      el("span", { class: "reason" }, event.reason || ""),
      el("span", { class: "detail" }, event.detail || "")
    );
    list.append(item);
  }
  if (missing) list.append(el("li", { class: "muted" }, `the manager's events are unavailable: ${missing}`));
  else if (!events.length) list.append(el("li", { class: "muted" }, "no event yet"));
}

// -- start -----------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    apiKey = $("key").value.trim();
    $("key").value = "";
    if (!apiKey) return;
    sessionStorage.setItem(KEY_STORE, apiKey);
    $("login-error").textContent = "";
    setStatus("connecting...", "");
    if (pollTimer !== null) clearTimeout(pollTimer);
    poll();
  });
  $("forget").addEventListener("click", () => forgetKey("key forgotten"));
  if (apiKey) poll();
  else showLogin("");
});
