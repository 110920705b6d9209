// Booking page: every change runs a dry run (POST /api/sessions/check) and shows the decision.
"use strict";
const $ = (id) => document.getElementById(id);
let topology = null;
let timer = null;
let seq = 0;

// The browser's sign-in cookie (HttpOnly) authenticates every call: the page never holds a token.
localStorage.removeItem("confctl.token");  // what earlier versions of this page kept

async function api(method, path, body) {
  const r = await fetch(path, {
    method,
    headers: { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status === 401) location.href = "/signin?next=" + encodeURIComponent(location.pathname + location.search);
  let data = null;
  try { data = await r.json(); } catch (e) { data = { error: "bad_response", detail: String(e) }; }
  return { status: r.status, data };
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function buildTree() {
  const byId = Object.fromEntries(topology.sites.map((s) => [s.id, s]));
  function node(id) {
    const s = byId[id];
    const rate = s.uplink ? ` ${s.uplink.rate_kbps / 1000} Mbit/s` : "";
    const box = el("input", { type: "checkbox", "data-site": id, id: "site-" + id });
    box.addEventListener("change", () => {
      // A prefecture (or any parent) takes its whole subtree in one click.
      for (const b of box.closest("li").querySelectorAll("input[data-site]")) b.checked = box.checked;
      schedule();
    });
    const li = el("li", {}, box, el("label", { for: "site-" + id }, `${s.name} `, el("span", { class: "rate" }, `${id}${rate}`)));
    if (s.children.length) li.append(el("ul", {}, ...s.children.map(node)));
    return li;
  }
  $("tree").replaceChildren(el("ul", {}, node(topology.root)));
  $("host").replaceChildren(...topology.sites.map((s) => el("option", { value: s.id }, `${s.name} (${s.id})`)));
  $("profile").replaceChildren(...topology.profiles.map((p) => el("option", { value: p.name }, p.name)));
  $("profile").value = topology.profiles.some((p) => p.name === "hd720") ? "hd720" : topology.profiles[0].name;
}

function pad(n) { return String(n).padStart(2, "0"); }

function defaultStart() {
  const d = new Date(Date.now() + 24 * 3600 * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T10:00`;
}

function isoWithOffset(local, offset, plusHours) {
  // local: "YYYY-MM-DDTHH:MM" in the chosen offset; add hours without leaving that offset.
  const sign = offset[0] === "-" ? -1 : 1;
  const offMin = sign * (parseInt(offset.slice(1, 3)) * 60 + parseInt(offset.slice(4, 6)));
  const utc = Date.parse(local + ":00Z") - offMin * 60000 + plusHours * 3600000;
  const d = new Date(utc + offMin * 60000);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:00${offset}`;
}

function body() {
  const host = $("host").value;
  const sites = [...document.querySelectorAll("#tree input[data-site]:checked")].map((b) => b.dataset.site).filter((s) => s !== host);
  const start = $("start").value;
  const b = {
    title: $("title").value, host_site: host, sites,
    start: isoWithOffset(start, $("offset").value, 0),
    end: isoWithOffset(start, $("offset").value, parseFloat($("hours").value)),
    profile: $("profile").value, plan: $("plan").value, record: $("record").checked,
  };
  if ($("recurrence").value.trim()) b.recurrence = $("recurrence").value.trim();
  return b;
}

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(check, 250);
}

function showLoads(plan) {
  const rows = (plan ? plan.links : []).map((l) => {
    const worst = Math.max(l.up_kbps, l.down_kbps);
    const pct = Math.min(100, Math.round((100 * worst) / l.limit_kbps));
    return el("tr", { "data-link": l.link }, el("td", {}, `${l.from} → ${l.to}`), el("td", {}, l.up_kbps), el("td", {}, l.down_kbps),
      el("td", {}, l.limit_kbps), el("td", {}, el("span", { class: "bar" + (worst > l.limit_kbps ? " over" : ""), style: `width:${pct}px` })));
  });
  $("loads").tBodies[0].replaceChildren(...rows);
}

function applyAlternative(a) {
  if (a.profile) $("profile").value = a.profile;
  if (a.plan) $("plan").value = a.plan;
  if (a.start) $("start").value = a.start.slice(0, 16);
  schedule();
}

function altLabel(a) {
  if (a.start) return `start ${a.start.slice(0, 16).replace("T", " ")} instead (${a.profile}, ${a.plan})`;
  return `use ${a.profile} (${a.plan} plan) instead`;
}

async function check() {
  const mine = ++seq;
  $("checking").textContent = "checking…";
  const b = body();
  const r = await api("POST", "/api/sessions/check", b);
  if (mine !== seq) return; // a newer check is under way
  $("checking").textContent = "";
  const v = $("violations");
  $("alternatives").replaceChildren();
  $("book").disabled = true;
  if (r.status !== 200) {
    $("verdict").className = "refused";
    $("verdict").textContent = `${r.data.error}: ${typeof r.data.detail === "string" ? r.data.detail : JSON.stringify(r.data.detail)}`;
    v.hidden = true;
    showLoads(null);
    return;
  }
  const d = r.data;
  if (d.decision === "accepted") {
    $("verdict").className = "accepted";
    $("verdict").textContent = `Fits: ${b.sites.length + 1} sites, ${d.occurrences.length} occurrence(s); rooms ` +
      Object.entries(d.rooms).map(([s, room]) => `${s}/${room}`).join(", ");
    v.hidden = true;
    showLoads(d.media_plan);
    $("book").disabled = false;
  } else {
    $("verdict").className = "refused";
    $("verdict").textContent = `Does not fit: ${d.violations.length} constraint(s) violated`;
    v.hidden = false;
    v.tBodies[0].replaceChildren(...d.violations.map((x) => el("tr", {},
      el("td", {}, x.kind === "link" ? `${x.from} → ${x.to}` : x.kind === "room" ? `room ${x.site}/${x.room}` : `node ${x.node}`),
      el("td", {}, x.direction || ""), el("td", {}, `${x.start.slice(5, 16).replace("T", " ")} – ${x.end.slice(11, 16)}`),
      el("td", {}, x.demand_kbps ?? x.demand_legs ?? ""), el("td", {}, x.available_kbps ?? x.available_legs ?? ""))));
    $("alternatives").replaceChildren(...d.alternatives.map((a) =>
      el("button", { class: "alternative", onclick: () => applyAlternative(a) }, altLabel(a))));
    showLoads(null);
  }
}

async function book() {
  const r = await api("POST", "/api/sessions", body());
  if (r.status === 201) {
    $("result").className = "accepted";
    $("result").textContent = `Booked ${r.data.id}: ${r.data.title}, ${r.data.start}`;
    $("result").append(" ", el("a", { href: `/api/sessions/${r.data.id}.ics` }, "calendar invite"),
      " ", el("button", { id: "dryrun", onclick: () => dryRun(r.data.id) }, "Dry run over the emulated network"),
      el("div", { id: "dryrun_result" }));
  } else {
    $("result").className = "refused";
    $("result").textContent = `Not booked (${r.status}): ${r.data.error}`;
  }
  schedule();
}

async function dryRun(id) {
  // A minute of the meeting's media with synthetic sites over an emulated copy of the WAN, the other
  // sessions at that time as background: pass or fail per link and per site.
  $("dryrun").disabled = true;
  const out = $("dryrun_result");
  const seconds = new URLSearchParams(location.search).get("dryrun_seconds") || "60";
  const r = await api("POST", `/api/sessions/${id}/dryrun?seconds=${encodeURIComponent(seconds)}`);
  if (r.status !== 202) {
    out.textContent = `Dry run not started: ${r.data.detail || r.data.error}`;
    $("dryrun").disabled = false;
    return;
  }
  out.textContent = `Dry run running (${r.data.seconds} s of media, plus setting up the emulated network)…`;
  for (;;) {
    await new Promise((done) => setTimeout(done, 2000));
    const s = await api("GET", `/api/sessions/${id}/dryrun`);
    if (s.status !== 200 || s.data.state === "running") continue;
    $("dryrun").disabled = false;
    if (s.data.state === "failed") { out.textContent = `Dry run could not run: ${s.data.error}`; return; }
    const d = s.data.result;
    out.replaceChildren(el("p", { id: "dryrun_verdict", class: d.passed ? "accepted" : "refused" },
      d.passed ? "Dry run passed: every link and site carried the meeting beside the others booked then."
               : "Dry run FAILED: see the links and sites marked below."),
      el("table", { id: "dryrun_links" }, el("tr", {}, ...["link", "direction", "this session kbit/s", "others kbit/s",
        "measured kbit/s", "dropped", ""].map((h) => el("th", {}, h))),
        ...d.links.map((x) => el("tr", {}, el("td", {}, x.link), el("td", {}, x.direction), el("td", {}, x.session_kbps),
          el("td", {}, x.background_kbps), el("td", {}, x.measured_kbps ?? "–"), el("td", {}, x.dropped_packets),
          el("td", {}, x.passed ? "ok" : "FAIL")))),
      el("ul", { id: "dryrun_sites" }, ...d.sites.map((x) => el("li", {},
        `${x.site}: ${x.passed ? "ok" : "FAIL — " + x.problems.join("; ")}`))));
    return;
  }
}

async function signOut() {
  await fetch("/api/signout", { method: "POST" });
  location.href = "/signin?next=/book";
}

async function start() {
  const me = await api("GET", "/api/me");
  if (me.status !== 200) return;
  $("who").replaceChildren(`${me.data.name} (${me.data.role}) `, el("button", { id: "signout", onclick: signOut }, "Sign out"));
  const t = await api("GET", "/api/topology");
  if (t.status !== 200) return;
  topology = t.data;
  buildTree();
  $("start").value = $("start").value || defaultStart();
  for (const id of ["title", "host", "start", "offset", "hours", "profile", "plan", "recurrence", "record"]) {
    $(id).addEventListener("change", schedule);
  }
  $("recurrence").addEventListener("input", schedule);
  $("book").addEventListener("click", book);
  schedule();
}

start();
