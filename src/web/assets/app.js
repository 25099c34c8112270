// hactor web console: one page for the simulator (`hactor-sim serve`)
// and the daemon's read-only live view. Plain JavaScript, no build step.
// The server streams {view, log_from, log} events; this page draws them.
"use strict";

const $ = (sel) => document.querySelector(sel);
const token = new URLSearchParams(location.search).get("token");
const withToken = (path) => (token ? `${path}?token=${encodeURIComponent(token)}` : path);

// Measurements for the browser tests: how long after the server's change
// a view was on screen, and how long after a click.
window.__lat = [];
window.__clickLat = [];
window.__nodeHistory = {};
window.__renders = 0;
let pendingClick = null;

let view = null;
let kindShown = null;
const chosen = {}; // per-service migrate target chosen in the table

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

const show = (v) => (v === null || v === undefined ? "—" : String(v));

async function post(path, body) {
  pendingClick = { at: performance.now(), renders: window.__renders };
  try {
    const r = await fetch(path, { method: "POST", headers: { "x-hactor": "1" }, body });
    const text = (await r.text()).trim();
    $("#message").textContent = text;
    return r.ok;
  } catch (e) {
    $("#message").textContent = `request failed: ${e}`;
    return false;
  }
}
const command = (text) => post("/api/command", text);
const control = (text) => post("/api/control", text);

function setKind(kind) {
  if (kindShown === kind) return;
  kindShown = kind;
  const sim = kind === "sim";
  document.querySelectorAll(".sim-only").forEach((e) => { e.hidden = !sim; if (!sim) e.style.display = "none"; });
  document.querySelectorAll(".live-only").forEach((e) => { e.hidden = sim; });
  $("#title").textContent = sim ? "hactor simulator" : `hactor live view — node ${view.node}`;
  $("#log-title").textContent = sim ? "Log" : "Recent HA decisions";
  document.title = sim ? "hactor simulator" : `hactor — ${view.node}`;
  if (sim) {
    const speed = $("#speed");
    for (const s of view.speeds) speed.append(el("option", { value: s, text: s }));
  }
}

function renderSummary() {
  const parts = [
    `${view.clock === "virtual" ? "virtual time" : "since start"} ${Math.round(view.time)} s`,
    `quorum ${view.quorate ? "OK" : "lost"}`,
    `master ${show(view.master)}`,
    view.disarm ? `HA ${view.disarm}` : "HA armed",
  ];
  if (view.kind === "sim") parts.push(view.running ? `running (${view.speed} rounds/s)` : "paused");
  if (view.halted) parts.push(`stopped: ${view.halted}`);
  $("#summary").textContent = parts.join(" · ");
}

function nodeRow(n) {
  const sim = view.kind === "sim";
  const tr = el("tr", { id: `node-${n.name}`, "data-node": n.name });
  const toggle = (what, on) =>
    sim
      ? el("button", {
          class: `${what} ${on ? "on" : "off"}`,
          text: on ? "on" : "off",
          title: `switch ${what} ${on ? "off" : "on"}`,
          onclick: () => command(`${what} ${n.name} ${on ? "off" : "on"}`),
        })
      : show(on === null ? null : on ? "online" : "offline");
  const status = n.status || "—";
  const hist = (window.__nodeHistory[n.name] ||= []);
  if (hist[hist.length - 1] !== status) hist.push(status);
  tr.append(
    el("td", { text: n.name }),
    el("td", { class: "power" }, sim ? toggle("power", n.power) : "—"),
    el("td", { class: "network" }, toggle("network", n.network)),
    el("td", { class: "crm", text: show(n.crm) }),
    el("td", { class: "lrm", text: n.lrm ? `${n.lrm}${n.mode && n.mode !== "active" ? ` (${n.mode})` : ""}` : "—" }),
    el("td", { class: "quorum", text: n.quorum === null ? "—" : n.quorum ? "yes" : "no" }),
    el("td", { class: `status s-${status}`, text: status + (n.shutdown ? ` (${n.shutdown})` : "") }),
    el("td", { class: "master", text: n.master ? "★" : "" }),
  );
  if (sim) {
    tr.append(
      el(
        "td",
        {},
        el("button", { class: "shutdown", text: "shutdown", onclick: () => command(`shutdown ${n.name}`) }),
        el("button", { class: "reboot", text: "reboot", onclick: () => command(`reboot ${n.name}`) }),
        n.maintenance
          ? el("button", { class: "maintenance", text: "end maintenance", onclick: () => command(`crm ${n.name} disable-node-maintenance`) })
          : el("button", { class: "maintenance", text: "maintenance", onclick: () => command(`crm ${n.name} enable-node-maintenance`) }),
      ),
    );
  }
  return tr;
}

function serviceRow(s) {
  const sim = view.kind === "sim";
  const tr = el("tr", { "data-sid": s.sid, "data-node": s.node || "" });
  const failed = (s.failed_nodes || []).join(", ");
  tr.append(
    el("td", { class: "sid", text: s.sid }),
    el("td", { class: `state s-${s.state}`, text: show(s.state) + (s.state === "started" && !s.running ? " (starting)" : "") }),
    el("td", { class: "node", text: show(s.node) }),
    el("td", { class: "request", text: show(s.request) }),
    el("td", { class: "target", text: show(s.target) }),
    el("td", { class: "failed", text: failed || "—" }),
    el("td", { class: "restarts", text: s.restarts === null ? "—" : `${s.restarts}/${show(s.max_restart)}` }),
  );
  if (sim) {
    const others = view.nodes.map((n) => n.name).filter((n) => n !== s.node);
    const target = el("select", { class: "to", onchange: (e) => { chosen[s.sid] = e.target.value; } });
    for (const n of others) target.append(el("option", { value: n, text: n }));
    if (others.includes(chosen[s.sid])) target.value = chosen[s.sid];
    const request = el("select", { class: "set-request", onchange: (e) => command(`service ${s.sid} ${e.target.value}`) });
    for (const r of ["started", "stopped", "disabled", "ignored"]) request.append(el("option", { value: r, text: r }));
    request.value = s.request || "started";
    tr.append(
      el(
        "td",
        {},
        target,
        el("button", { class: "migrate", text: "migrate", onclick: () => command(`service ${s.sid} migrate ${target.value}`) }),
        el("button", { class: "relocate", text: "relocate", onclick: () => command(`service ${s.sid} relocate ${target.value}`) }),
        request,
        el("button", { class: "remove", text: "remove", onclick: () => command(`service ${s.sid} delete`) }),
      ),
    );
  }
  return tr;
}

function barClass(state) {
  if (state === "started" || state === "stopped" || state === "fence" || state === "recovery" || state === "error" || state === "freeze") return state;
  if (state === "migrate" || state === "relocate" || state === "request_start_balance") return "migrate";
  return "other";
}
const BAR_COLORS = { started: "#6c6", stopped: "#bbb", migrate: "#69c", fence: "#e44", recovery: "#f93", error: "#922", freeze: "#acf", other: "#dc6" };
const MARK_COLORS = { unknown: "#db0", fence: "#e00", "fence acknowledged": "#80c", recovery: "#f70" };

function renderTimeline() {
  const t = view.timeline;
  const svg = $("#timeline");
  const NS = "http://www.w3.org/2000/svg";
  const width = Math.max(600, $("#timeline-box").clientWidth - 2);
  const left = 70, right = 10, rowH = 7, pad = 6;
  const rows = Math.max(1, t.rows.length);
  const laneH = rows * rowH + 2 * pad;
  const height = t.lanes.length * laneH + 24;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("height", height);
  const start = t.start ?? 0;
  const span = Math.max(1, t.end - start);
  const x = (s) => left + ((s - start) / span) * (width - left - right);
  const parts = [];
  const laneOf = {};
  t.lanes.forEach((node, i) => {
    laneOf[node] = i;
    const y = i * laneH;
    parts.push(`<rect x="0" y="${y}" width="${width}" height="${laneH}" fill="${i % 2 ? "#f6f6f6" : "#fff"}"/>`);
    parts.push(`<text x="4" y="${y + laneH / 2 + 4}" font-size="12">${node}</text>`);
  });
  const rowOf = {};
  t.rows.forEach((sid, i) => { rowOf[sid] = i; });
  for (const b of t.bars) {
    if (!(b.node in laneOf)) continue;
    const y = laneOf[b.node] * laneH + pad + rowOf[b.sid] * rowH;
    const x0 = x(b.from), w = Math.max(2, x(b.to) - x0);
    parts.push(
      `<rect class="bar" data-sid="${b.sid}" data-node="${b.node}" data-state="${b.state}" x="${x0.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${rowH - 1}" fill="${BAR_COLORS[barClass(b.state)]}"><title>${b.sid} ${b.state} on ${b.node}, ${Math.round(b.from)}–${Math.round(b.to)} s</title></rect>`,
    );
  }
  for (const m of t.marks) {
    if (!(m.node in laneOf)) continue;
    // The acknowledgement and the recovery often fall on the same
    // second: one takes the upper half of the lane, the other the lower.
    const top = laneOf[m.node] * laneH;
    const [y1, y2] =
      m.kind === "fence acknowledged" ? [top, top + laneH / 2] : m.kind === "recovery" ? [top + laneH / 2, top + laneH] : [top, top + laneH];
    const xm = x(m.at).toFixed(1);
    parts.push(
      `<line class="mark" data-kind="${m.kind}" data-node="${m.node}" x1="${xm}" x2="${xm}" y1="${y1}" y2="${y2}" stroke="${MARK_COLORS[m.kind] || "#000"}" stroke-width="3"><title>${m.label} at ${Math.round(m.at)} s</title></line>`,
    );
  }
  const axisY = t.lanes.length * laneH + 14;
  for (let i = 0; i <= 5; i++) {
    const s = start + (span * i) / 5;
    parts.push(`<text x="${x(s).toFixed(1)}" y="${axisY}" font-size="10" text-anchor="middle">${Math.round(s)} s</text>`);
  }
  svg.innerHTML = parts.join("");
  $("#clock").textContent = view.clock === "virtual" ? "(virtual seconds)" : "(seconds since the view started)";
}

function renderLog(from, lines) {
  const log = $("#log");
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 20;
  if (lines.length) log.append(document.createTextNode(lines.join("\n") + "\n"));
  // Keep the page light: at most the last 5000 lines.
  while (log.childNodes.length > 50) log.removeChild(log.firstChild);
  if (atBottom) log.scrollTop = log.scrollHeight;
  void from;
}

const rowCache = new WeakMap();
function updateRows(tbody, items, key, build, extra) {
  const cache = rowCache.get(tbody) || new Map();
  const next = new Map();
  const rows = items.map((item) => {
    const k = key(item);
    const sig = JSON.stringify(item) + extra;
    const old = cache.get(k);
    const row = old && old.sig === sig ? old.row : build(item);
    next.set(k, { sig, row });
    return row;
  });
  rowCache.set(tbody, next);
  const same = rows.length === tbody.children.length && rows.every((r, i) => tbody.children[i] === r);
  if (!same) tbody.replaceChildren(...rows);
}

function render(event) {
  view = event.view;
  if (!view) return;
  setKind(view.kind);
  renderSummary();
  // Rows are rebuilt only when their data changed: a row replaced
  // between a button's press and release would swallow the click.
  const others = view.nodes.map((n) => n.name).join(",");
  updateRows($("#nodes tbody"), view.nodes, (n) => n.name, nodeRow, "");
  updateRows($("#services tbody"), view.services, (s) => s.sid, serviceRow, others);
  renderTimeline();
  renderLog(event.log_from, event.log);
  if (view.kind === "sim") {
    $("#message").textContent = view.message || "";
    $("#queued").textContent = view.queued.length ? `queued for the next batch slot: ${view.queued.join("; ")}` : "";
    $("#speed").value = view.speed;
    if (!$("#export-dir").value) $("#export-dir").value = view.export_dir;
    const add = $("#add-node");
    if (add.options.length !== view.nodes.length) add.replaceChildren(...view.nodes.map((n) => el("option", { value: n.name, text: n.name })));
  } else {
    $("#status").textContent = (view.status || []).join("\n");
  }
  window.__renders += 1;
  // The first view may be old (a paused simulation): it measures nothing.
  if (window.__renders > 1) window.__lat.push(Date.now() - view.emitted_ms);
  if (pendingClick && window.__renders > pendingClick.renders) {
    window.__clickLat.push(performance.now() - pendingClick.at);
    pendingClick = null;
  }
}

// Events that arrive while the page is busy are merged: the newest view
// is drawn once with every log line, so a slow machine skips views
// instead of falling behind.
let pending = null;
function queue(event) {
  if (pending) {
    pending.view = event.view;
    pending.log = pending.log.concat(event.log);
    return;
  }
  pending = event;
  setTimeout(() => {
    const next = pending;
    pending = null;
    render(next);
  }, 0);
}

function connect() {
  const source = new EventSource(withToken("/events"));
  source.onopen = () => { $("#connection").textContent = "live"; $("#connection").className = "ok"; };
  source.onerror = () => { $("#connection").textContent = "disconnected — retrying"; $("#connection").className = "bad"; };
  source.onmessage = (m) => queue(JSON.parse(m.data));
}

$("#run").addEventListener("click", () => control("run"));
$("#pause").addEventListener("click", () => control("pause"));
$("#step").addEventListener("click", () => control("step"));
$("#speed").addEventListener("change", (e) => control(`speed ${e.target.value}`));
$("#export").addEventListener("click", () => post("/api/export", $("#export-dir").value));
$("#command-form").addEventListener("submit", (e) => { e.preventDefault(); command($("#command").value); });
$("#add-form").addEventListener("submit", (e) => {
  e.preventDefault();
  command(`service ${$("#add-sid").value.trim()} add ${$("#add-node").value}`);
});
document.querySelectorAll("button[data-cmd]").forEach((b) =>
  b.addEventListener("click", () => command(b.dataset.cmd.replace("{first}", view.nodes[0].name))),
);
window.addEventListener("resize", () => view && renderTimeline());
connect();
