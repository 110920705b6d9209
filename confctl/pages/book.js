// Booking page: every change runs a dry run (POST /api/sessions/check) and shows the decision.
"use strict";
let topology = null;
let timer = null;
let seq = 0;

// The browser's sign-in cookie (HttpOnly) authenticates every call: the page never holds a token.
localStorage.removeItem("confctl.token");  // what earlier versions of this page kept

function buildTree() {
  const byId = Object.fromEntries(topology.sites.map((s) => [s.id, s]));
  function node(id) {
    const s = byId[id];
    const rate = s.uplink ? ` ${s.uplink.rate_kbps / 1000} Mbit/s` : "";
    // A box is one site: a prefecture can take part without its counties; "+ all below" adds them.
    const box = el("input", { type: "checkbox", "data-site": id, id: "site-" + id, onchange: schedule });
    // What this site receives, shown once it takes part: a thin link may take the speaker only or audio.
    const layout = el("select", { class: "layout", "data-layout": id, title: `what ${s.name} receives`, onchange: schedule },
      ...LAYOUTS.map(([v, words]) => el("option", { value: v }, words)));
    layout.hidden = true;
    const li = el("li", { "data-node": id }, box, el("label", { for: "site-" + id }, `${s.name} `,
      s.name_zh ? el("span", { class: "zh", lang: "zh" }, `${s.name_zh} `) : null, el("span", { class: "rate" }, `${id}${rate}`)),
      " ", layout);
    if (s.children.length) {
      li.append(" ", el("button", { class: "subtree", "data-subtree": id, type: "button", onclick: () => {
        const boxes = [...li.querySelectorAll("input[data-site]")];
        const all = boxes.every((b) => b.checked);
        for (const b of boxes) b.checked = !all;
        schedule();
      } }, "+ all below"), el("ul", {}, ...s.children.map(node)));
    }
    return li;
  }
  $("tree").replaceChildren(el("ul", {}, node(topology.root)));
  $("host").replaceChildren(...topology.sites.map((s) => el("option", { value: s.id }, `${s.name} (${s.id})`)));
  $("profile").replaceChildren(...topology.profiles.map((p) => el("option", { value: p.name }, p.name)));
  $("profile").value = topology.profiles.some((p) => p.name === "hd720") ? "hd720" : topology.profiles[0].name;
}

// Typing in the site search shows only the sites found and those above them; choices stay as they are.
function filterTree() {
  const query = $("site_search").value;
  const { matched, shown } = sitesShown(topology, query);
  const searching = searchKey(query) !== "";
  for (const li of document.querySelectorAll("#tree li[data-node]")) {
    li.hidden = !shown.has(li.dataset.node);
    li.classList.toggle("found", searching && matched.has(li.dataset.node));
  }
  $("site_matches").textContent = !searching ? ""
    : matched.size ? `${matched.size} of ${topology.sites.length} sites found` : "No site matches; try a name, 中文名 or id.";
}

// The layouts a site may receive (rooms/plan.py Layout), richest first.
const LAYOUTS = [["full", "full program"], ["speaker", "speaker only"], ["audio", "audio only"]];
// Thin links by kind: mobile platforms and the vehicle sit behind 2 Mbit/s satellite links.
const THIN_LEVELS = new Set(["mobile"]);
let autoTouched = false;  // once the organizer sets "automatic for thin links" by hand, it stays as set

function chosenSites() {
  const host = $("host").value;
  return [host, ...[...document.querySelectorAll("#tree input[data-site]:checked")].map((b) => b.dataset.site).filter((s) => s !== host)];
}

function followChoice() {
  // Each taking part site shows its layout control; automatic for thin links follows the sites until set by hand.
  const taking = new Set(chosenSites());
  for (const sel of document.querySelectorAll("#tree select[data-layout]")) sel.hidden = !taking.has(sel.dataset.layout);
  if (!autoTouched) {
    const levels = Object.fromEntries(topology.sites.map((s) => [s.id, s.level]));
    $("auto_layouts").checked = [...taking].some((s) => THIN_LEVELS.has(levels[s]));
  }
}

function defaultStart() {  // tomorrow 10:00 in the province
  return `${addDays(provinceToday(), 1)}T10:00`;
}

function body() {
  const [host, ...sites] = chosenSites();
  const start = $("start").value;
  const layouts = {};
  for (const s of [host, ...sites]) {
    const sel = document.querySelector(`#tree select[data-layout="${CSS.escape(s)}"]`);
    if (sel && sel.value !== "full") layouts[s] = sel.value;
  }
  const b = {
    title: $("title").value, host_site: host, sites,
    start: isoWithOffset(start, PROVINCE.offset, 0),
    end: isoWithOffset(start, PROVINCE.offset, parseFloat($("hours").value)),
    profile: $("profile").value, plan: $("plan").value, record: $("record").checked,
    precedence: $("precedence").value, layouts, auto_layouts: $("auto_layouts").checked,
  };
  if ($("recurrence").value.trim()) b.recurrence = $("recurrence").value.trim();
  return b;
}

function schedule() {
  if (topology) followChoice();
  clearTimeout(timer);
  timer = setTimeout(check, 250);
}

function showLoads(plan) {
  const rows = (plan ? plan.links : []).flatMap((l) => ["up", "down"].map((d) => el("tr", { "data-link": l.link, "data-dir": d },
    el("td", {}, l.name || l.link), el("td", {}, d), el("td", {}, l[`${d}_booked_kbps`] ?? "–"), el("td", {}, l[`${d}_kbps`]),
    el("td", {}, l.limit_kbps), el("td", {}, loadBar(l[`${d}_booked_kbps`] || 0, l[`${d}_kbps`], l.limit_kbps)))));
  $("loads").tBodies[0].replaceChildren(...rows);
}

function applyAlternative(a) {
  if (a.profile) $("profile").value = a.profile;
  if (a.plan) $("plan").value = a.plan;
  if (a.start) $("start").value = provinceInput(a.start);
  schedule();
}

function layoutWords(layouts, verb = "") {
  // "Changchun Mobile Emergency Platform receives the speaker only", or with no verb "… the speaker only"
  const names = Object.fromEntries(topology.sites.map((s) => [s.id, s.name]));
  return Object.entries(layouts).map(([s, l]) => `${names[s] || s}${verb} ${STEP_WORDS[l] || l}`).join(", ");
}

function applyLayouts(layouts) {
  for (const [s, l] of Object.entries(layouts)) {
    const sel = document.querySelector(`#tree select[data-layout="${CSS.escape(s)}"]`);
    if (sel) sel.value = l;
  }
  schedule();
}

async function thinLinkAlternative(b, mine) {
  // The API admits thin links with a smaller layout (auto_layouts): where that fits, offer it as set layouts.
  if (b.auto_layouts) return;
  const r = await api("POST", "/api/sessions/check", { ...b, auto_layouts: true });
  if (mine !== seq || r.status !== 200 || r.data.decision !== "accepted") return;
  const layouts = r.data.media_plan.layouts || {};
  if (!Object.keys(layouts).length) return;
  $("alternatives").prepend(el("button", { class: "alternative", id: "thin_alternative", onclick: () => applyLayouts(layouts) },
    `give ${layoutWords(layouts)} instead`));
}

function altLabel(a) {
  if (a.start) return `start ${provinceWhen(a.start)} instead (${a.profile}, ${a.plan})`;
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
    $("verdict").textContent = problem(r.data);
    v.hidden = true;
    showLoads(null);
    return;
  }
  const d = r.data;
  if (d.decision === "accepted") {
    $("verdict").className = "accepted";
    const names = Object.fromEntries(topology.sites.map((s) => [s.id, s.name]));
    $("verdict").textContent = `Fits: ${b.sites.length + 1} sites, ${d.occurrences.length} occurrence(s); rooms ` +
      Object.entries(d.rooms).map(([s, room]) => `${names[s] || s} / ${room}`).join(", ");
    const smaller = d.media_plan.layouts || {};
    if (Object.keys(smaller).length) {
      $("verdict").append(el("div", { id: "layouts_note", class: "muted" }, `A smaller program: ${layoutWords(smaller, " receives")}.`));
    }
    v.hidden = true;
    showLoads(d.media_plan);
    $("book").disabled = false;
  } else {
    $("verdict").className = "refused";
    $("verdict").replaceChildren("Does not fit:", refusalList(d.violations));
    v.hidden = false;
    v.tBodies[0].replaceChildren(...d.violations.map((x) => el("tr", {},
      el("td", {}, x.kind === "link" ? x.link_name : x.kind === "room" ? `room ${x.site}/${x.room}` : `node ${x.node}`),
      el("td", {}, x.direction || ""), el("td", {}, `${provinceWhen(x.start).slice(5)} – ${provinceClock(x.end)}`),
      el("td", {}, x.demand_kbps ?? x.demand_legs ?? ""), el("td", {}, x.available_kbps ?? x.available_legs ?? ""))));
    $("alternatives").replaceChildren(...d.alternatives.map((a) =>
      el("button", { class: "alternative", onclick: () => applyAlternative(a) }, altLabel(a))));
    showLoads(null);
    await thinLinkAlternative(b, mine);
  }
}

async function book() {
  $("book").disabled = true;
  const r = await api("POST", "/api/sessions", body());
  if (r.status === 201) {
    // Booked: the result replaces the decision (a re-check would now count this very session against itself).
    clearTimeout(timer);
    $("verdict").className = "accepted";
    $("verdict").textContent = "Booked.";
    $("alternatives").replaceChildren();
    $("result").className = "";
    $("result").replaceChildren(
      el("p", { class: "accepted", id: "booked" }, `Booked “${r.data.title}”, ${provinceDay(r.data.start)} ${provinceSpan(r.data.start, r.data.end)}`),
      el("p", {}, "Dial-in from a registered phone: ", el("b", { id: "dial_in" }, r.data.dial_in || "–")),
      joinLinks(r.data, Object.fromEntries(topology.sites.map((s) => [s.id, s.name]))),
      el("p", {}, el("a", { href: `/sessions/${r.data.id}`, id: "session_link" }, "Open the session"), " · ",
        el("a", { href: `/api/sessions/${r.data.id}.ics` }, "calendar invite"), " · ",
        el("a", { href: "/sessions" }, "calendar")),
      el("p", { class: "muted", id: "invite_mail" }),
      el("button", { id: "dryrun", onclick: () => dryRun(r.data.id) }, "Dry run over the emulated network"),
      el("div", { id: "dryrun_result" }));
    inviteNote($("invite_mail"));
  } else {
    $("result").className = "refused";
    $("result").textContent = `Not booked: ${problem(r.data)}`;
    schedule();
  }
}

// One line beside the invite: mailed to the sites and you (confctl serve --smtp), or not mailed at all.
async function inviteNote(target) {
  const r = await api("GET", "/api/invite-mail");
  if (r.status === 200) target.textContent = r.data.note;
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

async function start() {
  const me = await api("GET", "/api/me");
  if (me.status !== 200) return;
  // Above routine only for the duty officer (the emergency permission); lower-precedence sessions give way.
  for (const o of $("precedence").options) o.disabled = o.value !== "routine" && !(me.data.permissions || []).includes("emergency");
  const t = await api("GET", "/api/topology");
  if (t.status !== 200) return;
  topology = t.data;
  buildTree();
  $("zone").textContent = PROVINCE.label;
  $("site_search").addEventListener("input", filterTree);
  $("site_search").addEventListener("keydown", (ev) => { if (ev.key === "Escape") { ev.target.value = ""; filterTree(); } });
  $("start").value = $("start").value || defaultStart();
  for (const id of ["title", "host", "start", "hours", "profile", "plan", "recurrence", "record", "precedence"]) {
    $(id).addEventListener("change", schedule);
  }
  $("auto_layouts").addEventListener("change", () => { autoTouched = true; schedule(); });
  $("recurrence").addEventListener("input", schedule);
  $("book").addEventListener("click", book);
  schedule();
}

start();
