// Operators' dashboard: the hierarchy coloured by live link load, live sessions and their legs, alarms.
// Live over server-sent events (/api/operator/feed, the sign-in cookie authenticates it); on opening, the
// alarm and pre-emption panels load what happened before (/api/operator/history).
"use strict";
const $ = (id) => document.getElementById(id);
let me = null, topology = null, selected = null, lastSnapshot = null, lastAt = 0;
let preemptions = [], clearedAlarms = [];  // newest first: the history on opening, then the feed's events
const siteNames = () => Object.fromEntries((topology?.sites || []).map((s) => [s.id, s.name]));
// A name that wraps rather than being cut, with the whole of it on hover.
const nameEl = (name, tag = "span") => el(tag, { class: "name", title: name }, name);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

async function api(method, path) {
  const r = await fetch(path, { method });
  if (r.status === 401) location.href = "/signin?next=/operator";
  return { status: r.status, data: await r.json().catch(() => ({})) };
}

const fmt = (v, digits = 0) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
const band = (pct) => (pct === null ? "idle" : pct > 90 ? "high" : pct >= 50 ? "mid" : pct > 0 ? "low" : "idle");
const clock = (epoch) => new Date(epoch * 1000).toLocaleTimeString();

// -- the network ------------------------------------------------------------------------
function linkCell(site, dir) {
  const view = (lastSnapshot?.links[site.id] || {})[dir];
  const pct = view ? view.utilization_pct : null;
  const title = view ? `${dir}: ${fmt(view.live_kbps)} kbit/s live, ${fmt(view.reserved_kbps)} reserved, of ${fmt(view.rate_kbps)}`
                     : `${dir}: idle`;
  return el("span", { class: `u ${band(pct)}`, title, "data-link": site.id, "data-dir": dir, "data-band": band(pct) },
            `${dir === "up" ? "▲" : "▼"}${pct === null ? "" : fmt(pct) + "%"}`);
}

// Under its parent, a site's name without the parent's ("Changchun Mobile Emergency Platform" under Changchun
// reads "Mobile Emergency Platform"), unless one word would be left ("Tonghua County" stays); the full name
// stays its title.
function shortName(site, parent) {
  const prefix = parent ? parent.name + " " : null;
  const rest = prefix && site.name.startsWith(prefix) ? site.name.slice(prefix.length) : "";
  return rest.trim().split(/\s+/).length >= 2 ? rest : site.name;
}

function siteRow(site, parent) {
  const over = ["up", "down"].some((d) => (lastSnapshot?.links[site.id] || {})[d]?.live_over_reserved);
  return el("div", { class: `site level-${site.level}`, id: `site-${site.id}`,
                     title: `${site.name} (${site.level}${site.rtt_ms ? ", " + site.rtt_ms + " ms link" : ""})` },
    el("span", { class: "name", title: site.name }, shortName(site, parent)),
    site.uplink ? linkCell(site, "up") : el("span"), site.uplink ? linkCell(site, "down") : el("span"),
    el("span", { class: over ? "over" : "", title: over ? "live load above its reservation" : "" }, over ? "⚠" : ""));
}

function drawTree() {
  if (!topology) return;
  const bySite = Object.fromEntries(topology.sites.map((s) => [s.id, s]));
  const branch = (id) => el("li", {}, siteRow(bySite[id], bySite[bySite[id].parent]),
    bySite[id].children.length ? el("ul", {}, ...bySite[id].children.map(branch)) : null);
  const root = bySite[topology.root];
  $("tree").replaceChildren(el("li", {}, siteRow(root)), ...root.children.map(branch));
}

// -- alarms ---------------------------------------------------------------------------------
function drawAlarms(alarms) {
  $("alarm-count").textContent = alarms.length;
  $("alarm-count").className = "count" + (alarms.length ? "" : " zero");
  $("alarms").replaceChildren(...alarms.map((a) => el("li", { class: a.acked_by ? "acked" : "", "data-kind": a.kind, id: `alarm-${a.id}` },
    el("span", { class: "when" }, clock(a.raised_at)), el("span", { class: "msg" }, a.message),
    a.acked_by ? el("span", { class: "when" }, `ack: ${a.acked_by}`)
               : el("button", { class: "ack", onclick: () => acknowledge(a.id) }, "Acknowledge"))));
  if (!alarms.length) $("alarms").append(el("li", { class: "acked" }, el("span", { class: "msg" }, "No open alarm.")));
}

function drawAlarmHistory() {
  $("alarm-history-box").hidden = !clearedAlarms.length;
  $("alarm-history-count").textContent = clearedAlarms.length;
  $("alarm-history").replaceChildren(...clearedAlarms.slice(0, 50).map((a) => el("li", { "data-kind": a.kind, id: `cleared-${a.id}` },
    el("span", { class: "when" }, `${clock(a.raised_at)}–${clock(a.cleared_at)}`), el("span", { class: "msg" }, a.message))));
}

function onAlarmEvent(e) {
  $("feed").textContent = "live · alarm event";
  if (e.event !== "cleared" || e.id === null || clearedAlarms.some((a) => a.id === e.id)) return;
  const open = (lastSnapshot?.alarms || []).find((a) => a.id === e.id);
  clearedAlarms.unshift({ id: e.id, kind: e.kind, message: e.message, raised_at: open ? open.raised_at : e.at, cleared_at: e.at });
  drawAlarmHistory();
}

async function acknowledge(id) {
  await api("POST", `/api/alarms/${id}/ack`);
}

// -- sessions and legs ------------------------------------------------------------------------
// Which figures are past the leg's own site thresholds: the server says (a satellite's delay is expected).
const poor = (leg, key) => (leg.beyond || []).includes(key);

// One jitter figure shown (the larger); by medium on hover where the node reports them apart.
function jitterCell(leg) {
  const split = leg.jitter_audio_ms !== null && leg.jitter_audio_ms !== undefined;
  return el("td", { class: poor(leg, "jitter_ms") ? "poor" : "", title: split
    ? `audio ${fmt(leg.jitter_audio_ms)} ms · video ${fmt(leg.jitter_video_ms)} ms` : "audio and video together" }, fmt(leg.jitter_ms, 0));
}

function legRow(session, leg) {
  const cell = (key, digits) => el("td", { class: poor(leg, key) ? "poor" : "" }, fmt(leg[key], digits));
  const isSel = selected && selected.session === session.id && selected.site === leg.site;
  const row = el("tr", { class: "leg" + (isSel ? " selected" : ""), "data-site": leg.site, "data-grade": leg.grade,
                         onclick: () => select(session, leg) },
    el("td", {}, el("div", { class: "leg-site" }, el("span", { class: `grade ${leg.grade}`, title: leg.grade }), nameEl(leg.name))),
    el("td", {}, leg.kind === "trunk" ? "node link" : leg.kind === "sip" ? "phone" : "browser"),
    el("td", {}, leg.node), cell("kbps_in"), cell("kbps_out"), cell("loss_pct", 1), jitterCell(leg),
    cell("rtt_ms", 0), cell("mos", 2), cell("video_score", 1), el("td", {}, leg.fps === null ? "–" : `${fmt(leg.fps)} · ${leg.resolution || "–"}`));
  if (me && me.role === "admin" && leg.kind !== "trunk") {
    row.append(el("td", {}, el("button", { class: "end", onclick: (ev) => { ev.stopPropagation(); endLeg(session, leg); } }, "End")));
  }
  return row;
}

function drawSessions(sessions) {
  if (!sessions.length) { $("sessions").replaceChildren(el("p", { class: "empty" }, "No session is live.")); return; }
  const head = ["site", "kind", "node", "kbit/s in", "kbit/s out", "loss %", "jitter ms", "RTT ms", "MOS", "video", "fps · size"];
  $("sessions").replaceChildren(...sessions.map((s) => el("div", { class: "session", id: `session-${s.id}` },
    el("div", { class: "session-title" }, nameEl(s.title), el("small", {}, s.id)),
    el("table", { class: "legs" }, el("tr", {}, ...head.map((h) => el("th", {}, h))), ...s.legs.map((l) => legRow(s, l))))));
}

async function endLeg(session, leg) {
  if (!confirm(`End ${leg.name}'s connection to “${session.title}”? Its page is told and does not rejoin.`)) return;
  const r = await api("POST", `/api/sessions/${encodeURIComponent(session.id)}/legs/${encodeURIComponent(leg.site)}/end`);
  if (r.status !== 200) alert(r.data.detail || r.data.error);
}

// -- one leg's last minutes -------------------------------------------------------------------
function select(session, leg) {
  selected = { session: session.id, site: leg.site, name: leg.name, title: session.title };
  $("chart-box").hidden = false;
  $("chart-title").textContent = `${leg.name} in “${session.title}”: the last minutes`;
  drawSessions(lastSnapshot.sessions);
  drawChart();
}

async function drawChart() {
  if (!selected) return;
  const r = await api("GET", `/api/legs/history?session=${encodeURIComponent(selected.session)}&site=${encodeURIComponent(selected.site)}`);
  const samples = r.data.samples || [];
  const c = $("chart"), g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  if (samples.length < 2) { g.fillStyle = "#8b9aab"; g.fillText("collecting samples…", 20, 30); return; }
  const t0 = samples[0].t, t1 = samples[samples.length - 1].t, maxKbps = Math.max(1, ...samples.map((s) => s.kbps_in));
  const x = (t) => 40 + (c.width - 50) * (t - t0) / Math.max(1, t1 - t0);
  const line = (color, value) => {
    g.strokeStyle = color; g.lineWidth = 2; g.beginPath();
    let started = false;
    for (const s of samples) {
      const v = value(s);
      if (v === null || v === undefined) continue;
      const y = 10 + (c.height - 30) * (1 - Math.min(1, Math.max(0, v)));
      if (started) g.lineTo(x(s.t), y); else { g.moveTo(x(s.t), y); started = true; }
    }
    g.stroke();
  };
  g.strokeStyle = "#253241"; g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) { const y = 10 + (c.height - 30) * i / 4; g.beginPath(); g.moveTo(40, y); g.lineTo(c.width - 10, y); g.stroke(); }
  g.fillStyle = "#8b9aab"; g.font = "14px system-ui";
  g.fillText(clock(t0), 40, c.height - 4); g.fillText(clock(t1), c.width - 90, c.height - 4);
  line("#2ea043", (s) => s.kbps_in / maxKbps);
  line("#f85149", (s) => (s.loss_pct === null ? null : s.loss_pct / 10));
  line("#58a6ff", (s) => (s.mos === null ? null : (s.mos - 1) / 4));
}

// -- emergencies: what gave way, what came back ---------------------------------------------------
// The same event may come from the history and the feed (it happened while the page opened): kept once.
const sameEvent = (a, b) => a.session === b.session && a.emergency === b.emergency && a.event === b.event
  && Math.abs(a.at - b.at) < 15;

function addPreemptions(events) {
  for (const e of events) if (!preemptions.some((x) => sameEvent(x, e))) preemptions.push(e);
  preemptions.sort((a, b) => b.at - a.at);
  preemptions = preemptions.slice(0, 50);
  drawPreemptions();
}

function drawPreemptions() {
  $("preemptions-box").hidden = !preemptions.length;
  const names = siteNames();
  $("preemptions").replaceChildren(...preemptions.map((e) => {
    const steps = e.steps.map((s) => `${s.link} ${s.direction}: ${s.to} (${s.from_kbps} → ${s.to_kbps} kbit/s)`).join("; ");
    return el("li", { "data-session": e.session, "data-event": e.event, "data-history": e.history ? "yes" : null },
      el("span", { class: "when" }, clock(e.at)), " ",
      el("b", {}, e.event === "restored" ? "Restored " : "Gave way "), `“${e.title}” for “${e.emergency_title}”: ${steps}`,
      e.dropped.length ? ` · dropped: ${e.dropped.map((s) => names[s] || s).join(", ")}` : "");
  }));
}

async function loadHistory() {
  const r = await api("GET", "/api/operator/history");
  if (r.status !== 200) return;
  addPreemptions(r.data.preemptions);
  for (const a of r.data.alarms) if (a.cleared_at && !clearedAlarms.some((x) => x.id === a.id)) clearedAlarms.push(a);
  clearedAlarms.sort((a, b) => b.cleared_at - a.cleared_at);
  drawAlarmHistory();
  if (!lastSnapshot) drawAlarms(r.data.alarms.filter((a) => !a.cleared_at));  // until the first snapshot
}

// -- the live feed ----------------------------------------------------------------------------
function onSnapshot(snap) {
  lastSnapshot = snap;
  lastAt = Date.now();
  drawTree();
  drawAlarms(snap.alarms);
  drawSessions(snap.sessions);
  if (selected) drawChart();
}

function connect() {
  const feed = new EventSource("/api/operator/feed");
  feed.addEventListener("snapshot", (ev) => onSnapshot(JSON.parse(ev.data)));
  feed.addEventListener("alarm", (ev) => onAlarmEvent(JSON.parse(ev.data)));
  feed.addEventListener("ack", (ev) => {
    const a = JSON.parse(ev.data);
    if (!lastSnapshot) return;
    for (const x of lastSnapshot.alarms) if (x.id === a.id) x.acked_by = a.acked_by;
    drawAlarms(lastSnapshot.alarms);
  });
  feed.addEventListener("preemption", (ev) => addPreemptions([JSON.parse(ev.data)]));
  feed.onopen = () => { $("feed").className = "feed live"; };
  feed.onerror = () => { $("feed").className = "feed lost"; $("feed").textContent = "feed lost: reconnecting…"; };
}

setInterval(() => {
  if (!lastAt) return;
  const age = Math.round((Date.now() - lastAt) / 1000);
  $("feed").textContent = `live · updated ${age} s ago`;
  $("feed").className = "feed " + (age > 15 ? "lost" : "live");
}, 1000);

async function start() {
  const who = await api("GET", "/api/me");
  if (who.status !== 200) return;
  me = who.data;
  $("who").replaceChildren(`${me.name} (${me.role}) `, el("button", { id: "signout", onclick: async () => {
    await fetch("/api/signout", { method: "POST" }); location.href = "/signin?next=/operator"; } }, "Sign out"));
  const t = await api("GET", "/api/topology");
  topology = t.data;
  drawTree();
  connect();
  await loadHistory();
}
start();
