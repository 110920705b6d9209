// Organizers' calendar: sessions by week or day, filtered by site and room; each opens its own page.
"use strict";
let topology = null, names = {}, anchor = startOfDay(new Date());

function startOfDay(d) { const x = new Date(d); x.setHours(0, 0, 0, 0); return x; }
function addDays(d, n) { const x = new Date(d); x.setDate(x.getDate() + n); return x; }
function weekStart(d) { const x = startOfDay(d); return addDays(x, -((x.getDay() + 6) % 7)); }  // Monday
function ymd(d) { return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`; }

function fromQuery() {
  const q = new URLSearchParams(location.search);
  if (q.get("date")) anchor = startOfDay(new Date(q.get("date") + "T00:00"));
  if (q.get("view")) $("view").value = q.get("view");
  if (q.get("site")) $("site").value = q.get("site");
  fillRooms();
  if (q.get("room")) $("room").value = q.get("room");
}

function fillRooms() {
  const site = topology.sites.find((s) => s.id === $("site").value);
  $("room").replaceChildren(el("option", { value: "" }, "any room"),
    ...(site ? site.rooms : []).map((r) => el("option", { value: r.id }, r.name)));
  $("room").disabled = !site;
}

async function draw() {
  const week = $("view").value === "week";
  const first = week ? weekStart(anchor) : anchor, days = week ? 7 : 1, last = addDays(first, days);
  const q = new URLSearchParams({ view: $("view").value, date: ymd(anchor) });
  if ($("site").value) q.set("site", $("site").value);
  if ($("room").value) q.set("room", $("room").value);
  history.replaceState(null, "", "/sessions?" + q);
  $("range").textContent = week ? `${ymd(first)} – ${ymd(addDays(last, -1))}` : ymd(first);
  const params = new URLSearchParams({ from: first.toISOString(), to: last.toISOString() });
  if ($("site").value) params.set("site", $("site").value);
  const r = await api("GET", `/api/sessions?${params}`);
  if (r.status !== 200) { $("calendar").replaceChildren(el("p", { class: "refused" }, problem(r.data))); return; }
  let sessions = r.data.sessions;
  if ($("site").value && $("room").value) {
    sessions = sessions.filter((s) => s.sites.some((x) => x.site === $("site").value && x.room === $("room").value));
  }
  const cols = [];
  for (let i = 0; i < days; i++) {
    const day = addDays(first, i), next = addDays(day, 1);
    const mine = sessions.flatMap((s) => s.occurrences.map((o) => ({ s, o })))
      .filter(({ o }) => new Date(o.start) < next && new Date(o.end) > day)
      .sort((a, b) => new Date(a.o.start) - new Date(b.o.start));
    cols.push(el("div", { class: "day-col" + (ymd(day) === ymd(new Date()) ? " today" : ""), "data-day": ymd(day) },
      el("h3", {}, day.toLocaleDateString(undefined, { weekday: "short", month: "short", day: "numeric" })),
      ...mine.map(({ s, o }) => el("a", { class: "event" + (s.status === "cancelled" ? " cancelled" : ""), href: `/sessions/${s.id}`,
        "data-session": s.id, title: s.sites.map((x) => names[x.site] || x.site).join(", ") },
        el("span", { class: "t" }, `${new Date(o.start).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}–` +
          `${new Date(o.end).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`),
        s.title, el("span", { class: "t" }, `${names[s.host_site] || s.host_site} + ${s.sites.length - 1} · ${s.profile}`)))));
  }
  $("calendar").className = "calendar " + (week ? "week" : "day");
  $("calendar").replaceChildren(...cols);
  $("empty").hidden = sessions.length > 0;
}

// Today's sessions at the technician's site, each with its Join button (the site's own join link).
async function today(site) {
  const from = startOfDay(new Date()), to = addDays(from, 1);
  const r = await api("GET", `/api/sessions?${new URLSearchParams({ site, from: from.toISOString(), to: to.toISOString() })}`);
  $("today").hidden = false;
  $("today_site").textContent = names[site] || site;
  if (r.status !== 200) { $("today_list").replaceChildren(el("li", { class: "refused" }, problem(r.data))); return; }
  const hhmm = (iso) => new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const rows = [];
  for (const s of r.data.sessions) {
    for (const o of s.occurrences.filter((o) => new Date(o.start) < to && new Date(o.end) > from)) {
      const ended = new Date(o.end) <= new Date();
      const one = ended ? null : await api("GET", `/api/sessions/${encodeURIComponent(s.id)}`);
      const url = one && one.status === 200 ? (one.data.join_urls || {})[site] : null;
      rows.push(el("li", { "data-session": s.id }, el("span", { class: "t" }, `${hhmm(o.start)}–${hhmm(o.end)} `),
        el("a", { href: `/sessions/${s.id}` }, s.title), " ",
        ended ? el("span", { class: "muted" }, "ended")
          : url ? el("a", { class: "join-button", href: url }, new Date(o.start) <= new Date() ? "Join now" : "Join")
            : el("span", { class: "muted" }, "no join link for this site")));
    }
  }
  $("today_list").replaceChildren(...(rows.length ? rows : [el("li", { class: "muted" }, "No session today.")]));
}

async function start() {
  const me = await api("GET", "/api/me");
  if (me.status !== 200) return;
  topology = (await api("GET", "/api/topology")).data;
  names = Object.fromEntries(topology.sites.map((s) => [s.id, s.name]));
  $("site").append(...topology.sites.map((s) => el("option", { value: s.id }, s.name)));
  fromQuery();
  if (me.data.role === "technician") {
    // A technician's own site only (the API refuses others): its calendar, and today's sessions to join.
    $("site").value = me.data.site;
    $("site").disabled = true;
    fillRooms();
    today(me.data.site);
  }
  $("site").addEventListener("change", () => { fillRooms(); draw(); });
  for (const id of ["view", "room"]) $(id).addEventListener("change", draw);
  $("prev").addEventListener("click", () => { anchor = addDays(anchor, $("view").value === "week" ? -7 : -1); draw(); });
  $("next").addEventListener("click", () => { anchor = addDays(anchor, $("view").value === "week" ? 7 : 1); draw(); });
  $("today").addEventListener("click", () => { anchor = startOfDay(new Date()); draw(); });
  draw();
}
start();
