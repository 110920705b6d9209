// Organizers' calendar: a week or day time grid (or a list) in the province's time, filtered by site and
// room; cancelled sessions stay, struck through; each session opens its own page.
"use strict";
let topology = null, names = {}, anchor = provinceToday();
const HOUR_PX = 44;           // the grid's height of one hour
const MIN_BLOCK_MIN = 25;     // a block is at least this many minutes tall, so its time and title are readable

function fromQuery() {
  const q = new URLSearchParams(location.search);
  if (isYmd(q.get("date"))) anchor = q.get("date");
  if (["week", "day"].includes(q.get("view"))) $("view").value = q.get("view");
  if (["grid", "list"].includes(q.get("shape"))) $("shape").value = q.get("shape");
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

// A session's state in words, beside its block: struck-through alone would not say why.
function stateWords(s, o, now) {
  const words = s.precedence && s.precedence !== "routine" ? [s.precedence] : [];
  if (s.status === "cancelled") words.push("cancelled");
  else if (Date.parse(o.end) <= now) words.push("ended");
  else if (Date.parse(o.start) <= now) words.push("running now");
  return words.join(" · ");
}

function eventBlock(it, now, style) {
  const { s } = it;
  const state = stateWords(s, it, now);
  return el("a", { class: `event${s.status === "cancelled" ? " cancelled" : ""}${s.precedence === "emergency" ? " emergency" : ""}`,
    href: `/sessions/${encodeURIComponent(s.id)}`, "data-session": s.id, "data-status": s.status, style,
    title: `${s.title}\n${dayHeading(provinceDay(it.start))} ${provinceSpan(it.start, it.end)}${state ? ` (${state})` : ""}\n` +
      s.sites.map((x) => names[x.site] || x.site).join(", ") },
    el("span", { class: "t" }, provinceSpan(it.start, it.end)),
    el("span", { class: "title" }, s.title),
    state ? el("span", { class: "state" }, state) : null,
    el("span", { class: "meta" }, `${names[s.host_site] || s.host_site} + ${s.sites.length - 1} · ${s.profile}`));
}

function grid(days, items, now) {
  const today = provinceToday();
  const heads = days.map((d) => el("button", { type: "button", class: "day-head" + (d === today ? " is-today" : ""), "data-day": d,
    title: "this day alone", onclick: () => { anchor = d; $("view").value = "day"; draw(); } },
    dayHeading(d), d === today ? el("span", { class: "today-mark" }, "today") : null));
  const hours = el("div", { class: "hours" }, ...Array.from({ length: 24 }, (_, h) =>
    el("div", { class: "hour", "data-hour": h, style: `top:${h * HOUR_PX}px` }, `${String(h).padStart(2, "0")}:00`)));
  const cols = days.map((d) => {
    const start = dayStartMs(d), pieces = lanes(dayPieces(items, start, start + 86400000), MIN_BLOCK_MIN);
    const col = el("div", { class: "day-col" + (d === today ? " is-today" : ""), "data-day": d },
      ...pieces.map((p) => eventBlock(p.item, now,
        `top:${(p.from / 60) * HOUR_PX}px;height:${(Math.max(p.to - p.from, MIN_BLOCK_MIN) / 60) * HOUR_PX - 2}px;` +
        `left:${(100 * p.lane) / p.lanes}%;width:calc(${100 / p.lanes}% - 3px)`)));
    if (d === today) col.append(el("div", { class: "now", title: `now, ${provinceClock(now)}`,
      style: `top:${((now - start) / 3600000) * HOUR_PX}px` }));
    return col;
  });
  const box = el("div", { class: "grid", style: `--days:${days.length};--hour:${HOUR_PX}px` },
    el("div", { class: "corner" }), ...heads, hours, ...cols);
  return box;
}

function list(days, items, now) {
  const today = provinceToday();
  return el("div", { class: "agenda" }, ...days.map((d) => {
    const start = dayStartMs(d), pieces = dayPieces(items, start, start + 86400000);
    return el("section", { class: "list-day" + (d === today ? " is-today" : ""), "data-day": d },
      el("h3", {}, dayHeading(d), d === today ? el("span", { class: "today-mark" }, "today") : null),
      pieces.length ? el("ul", {}, ...pieces.map((p) => el("li", {}, eventBlock(p.item, now))))
        : el("p", { class: "muted" }, "No session."));
  }));
}

async function draw() {
  const week = $("view").value === "week";
  const first = week ? mondayOf(anchor) : anchor, count = week ? 7 : 1;
  const days = Array.from({ length: count }, (_, i) => addDays(first, i));
  const q = new URLSearchParams({ view: $("view").value, date: anchor, shape: $("shape").value });
  if ($("site").value) q.set("site", $("site").value);
  if ($("room").value) q.set("room", $("room").value);
  history.replaceState(null, "", "/sessions?" + q);
  $("range").textContent = week ? `${dayHeading(first)} – ${dayHeading(days[count - 1])} ${days[count - 1].slice(0, 4)}` : dayLong(first);
  const params = new URLSearchParams({ from: new Date(dayStartMs(first)).toISOString(),
    to: new Date(dayStartMs(addDays(first, count))).toISOString(), include_cancelled: "true" });
  if ($("site").value) params.set("site", $("site").value);
  const r = await api("GET", `/api/sessions?${params}`);
  if (r.status !== 200) { $("calendar").replaceChildren(el("p", { class: "refused" }, problem(r.data))); return; }
  let sessions = r.data.sessions;
  if ($("site").value && $("room").value) {
    sessions = sessions.filter((s) => s.sites.some((x) => x.site === $("site").value && x.room === $("room").value));
  }
  const items = sessions.flatMap((s) => s.occurrences.map((o) => ({ s, start: o.start, end: o.end })));
  const now = Date.now();
  const shape = $("shape").value;
  $("calendar").className = `calendar ${shape} ${week ? "week" : "day"}`;
  $("calendar").replaceChildren(shape === "grid" ? grid(days, items, now) : list(days, items, now));
  $("empty").hidden = items.length > 0;
  if (shape === "grid") {  // the working day in view, or the first session if it starts earlier
    const firstHour = Math.min(7, ...items.map((it) => Date.parse(it.start) < dayStartMs(first) ? 0
      : Number(provinceClock(it.start).slice(0, 2))));
    $("calendar").querySelector(".grid").scrollTop = firstHour * HOUR_PX;
  }
}

// Today's sessions at the technician's site, each with its Join button (the site's own join link).
async function today(site) {
  const day = provinceToday();
  const from = dayStartMs(day), to = dayStartMs(addDays(day, 1));
  const r = await api("GET", `/api/sessions?${new URLSearchParams({ site, from: new Date(from).toISOString(), to: new Date(to).toISOString() })}`);
  $("today").hidden = false;
  $("today_site").textContent = names[site] || site;
  if (r.status !== 200) { $("today_list").replaceChildren(el("li", { class: "refused" }, problem(r.data))); return; }
  const rows = [];
  for (const s of r.data.sessions) {
    for (const o of s.occurrences.filter((o) => Date.parse(o.start) < to && Date.parse(o.end) > from)) {
      const ended = new Date(o.end) <= new Date();
      const one = ended ? null : await api("GET", `/api/sessions/${encodeURIComponent(s.id)}`);
      const url = one && one.status === 200 ? (one.data.join_urls || {})[site] : null;
      rows.push(el("li", { "data-session": s.id }, el("span", { class: "t" }, `${provinceSpan(o.start, o.end)} `),
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
  $("zone").textContent = PROVINCE.label;
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
  for (const id of ["view", "shape", "room"]) $(id).addEventListener("change", draw);
  const step = (sign) => { anchor = addDays(anchor, sign * ($("view").value === "week" ? 7 : 1)); draw(); };
  $("prev").addEventListener("click", () => step(-1));
  $("next").addEventListener("click", () => step(1));
  $("go_today").addEventListener("click", () => { anchor = provinceToday(); draw(); });
  draw();
}
start();
