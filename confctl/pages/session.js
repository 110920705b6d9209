// One session's own page: its facts, join links, dial-in and invite, its load on each link, edit and cancel.
"use strict";
const sid = decodeURIComponent(location.pathname.split("/").pop());
let topology = null, names = {}, session = null;

// A site given a smaller program (by hand, or for its thin link) says so beside its name.
function receives(s, site) {
  const layout = ((s.media_plan || {}).layouts || {})[site];
  return layout ? ` (${STEP_WORDS[layout] || layout})` : "";
}

function facts(s) {
  const row = (k, ...v) => el("tr", {}, el("td", {}, k), el("td", {}, ...v));
  return [
    row("When", el("span", { id: "when" }, `${provinceDay(s.start)} ${provinceSpan(s.start, s.end)}`),
        s.recurrence ? ` · repeats ${s.recurrence}, ${s.occurrences.length} times` : ""),
    row("Host", `${names[s.host_site] || s.host_site}`),
    row("Sites", s.sites.map((x) => `${names[x.site] || x.site} / ${x.room}` + receives(s, x.site)).join(", ")),
    row("Profile and plan", `${s.profile}, ${s.plan}${s.record ? ", recorded" : ""}`),
    row("Precedence", s.precedence || "routine"),
    row("Dial-in", el("b", { id: "dial_in" }, s.dial_in || "–"), " from a registered phone"),
    row("Invite", el("a", { href: `/api/sessions/${s.id}.ics`, id: "invite" }, "calendar invite (.ics)"),
        el("p", { class: "muted", id: "invite_mail" })),
  ];
}

// Whether invites are mailed (confctl serve --smtp) or must be sent by hand: one line under the invite.
async function inviteNote() {
  const r = await api("GET", "/api/invite-mail");
  if (r.status === 200 && $("invite_mail")) $("invite_mail").textContent = r.data.note;
}

async function loads() {
  const r = await api("GET", `/api/sessions/${encodeURIComponent(sid)}/loads`);
  if (r.status !== 200) return;
  $("loads").tBodies[0].replaceChildren(...r.data.links.flatMap((l) => ["up", "down"].map((d) => el("tr", { "data-link": l.link, "data-dir": d },
    el("td", {}, l.name), el("td", {}, d), el("td", {}, l[`${d}_booked_kbps`]), el("td", {}, l[`${d}_kbps`]), el("td", {}, l.limit_kbps),
    el("td", {}, loadBar(l[`${d}_booked_kbps`], l[`${d}_kbps`], l.limit_kbps))))));
}

function show(s) {
  session = s;
  $("title").textContent = s.title;
  document.title = `confctl · ${s.title}`;
  $("status").textContent = s.status === "cancelled" ? "Cancelled." : `${Date.parse(s.end) <= Date.now() ? "Ended. " : ""}Booked by ${s.organizer_id === (window.me || {}).id ? "you" : "its organizer"}.`;
  $("facts").replaceChildren(...facts(s));
  $("links").replaceChildren(s.status === "cancelled" ? el("p", { class: "muted" }, "A cancelled session has no join links.")
    : Object.keys(s.join_urls || {}).length ? joinLinks(s, names) : el("p", { class: "muted" }, "Only the organizer sees the join links."));
  $("e_title").value = s.title;
  $("e_start").value = provinceInput(s.start);  // edited in the province's time, whatever offset it was booked in
  const hours = (new Date(s.end) - new Date(s.start)) / 3600000;
  if (![...$("e_hours").options].some((o) => parseFloat(o.value) === hours)) $("e_hours").append(el("option", { value: hours }, `${hours} h`));
  $("e_hours").value = String(hours);
  $("e_profile").value = s.profile;
  $("e_plan").value = s.plan;
  for (const id of ["save", "cancel"]) $(id).disabled = s.status === "cancelled";
  loads();
  showHistory();
  inviteNote();
}

// What emergencies took from this session and gave back (or, for an emergency, what it took).
async function showHistory() {
  const r = await api("GET", `/api/sessions/${encodeURIComponent(sid)}/history`);
  const events = r.status === 200 ? r.data.history.filter((e) => e.what !== "booked") : [];
  $("history-box").hidden = !events.length;
  $("history").replaceChildren(...events.map((e) => el("li", { "data-kind": e.kind },
    `${provinceWhen(e.at)} · ${e.what === "restore" ? "got back" : e.what.startsWith("took") ? e.what : e.what === "drop" ? "dropped" : e.what === "limit" ? "limited" : "gave way"}: `,
    ...(e.direction === "" ? [e.message] : [  // a room (moved, given up, back): said in words by the API
    `${(e.sites || []).map((x) => names[x] || x).join(", ")} ${STEP_WORDS[e.step] || e.step} on ${e.link} (${e.direction}), `,
    `${e.from_kbps} → ${e.to_kbps} kbit/s`]), e.emergency_id !== sid ? ` (emergency ${e.emergency_id})` : "")));
}

function refusal(d) {
  return el("div", { class: "refused", id: "edit_refusal" }, "Not changed: it does not fit.", refusalList(d.violations),
    ...d.alternatives.map((a) => el("button", { class: "alternative", type: "button", onclick: () => {
      if (a.start) $("e_start").value = provinceInput(a.start);
      if (a.profile) $("e_profile").value = a.profile;
      if (a.plan) $("e_plan").value = a.plan;
      save();
    } }, a.start ? `Move to ${provinceWhen(a.start)}` : `Use ${a.profile} (${a.plan})`)));
}

async function save(ev) {
  if (ev) ev.preventDefault();
  const off = PROVINCE.offset;
  const change = { title: $("e_title").value, profile: $("e_profile").value, plan: $("e_plan").value,
                   start: isoWithOffset($("e_start").value, off, 0),
                   end: isoWithOffset($("e_start").value, off, parseFloat($("e_hours").value)) };
  $("save").disabled = true;
  const r = await api("PATCH", `/api/sessions/${encodeURIComponent(sid)}`, change);
  $("save").disabled = false;
  if (r.status === 200) {
    show(r.data);
    $("edit_result").replaceChildren(el("p", { class: "accepted", id: "edit_ok" }, "Saved: admission checked again, the invite updated."));
  } else if (r.status === 409 && r.data.violations) {
    $("edit_result").replaceChildren(refusal(r.data));
  } else {
    $("edit_result").replaceChildren(el("p", { class: "refused" }, problem(r.data)));
  }
}

async function cancelSession() {
  if (!confirm(`Cancel “${session.title}”? Its sites are told through the updated invite; its links are freed.`)) return;
  const r = await api("DELETE", `/api/sessions/${encodeURIComponent(sid)}`);
  if (r.status === 200) {
    show({ ...session, ...r.data, join_urls: {} });
    $("edit_result").replaceChildren(el("p", { class: "accepted", id: "cancelled" }, "Cancelled."));
  } else {
    $("edit_result").replaceChildren(el("p", { class: "refused" }, problem(r.data)));
  }
}

async function start() {
  const me = await api("GET", "/api/me");
  if (me.status !== 200) return;
  window.me = me.data;
  $("zone").textContent = PROVINCE.label;
  topology = (await api("GET", "/api/topology")).data;
  names = Object.fromEntries(topology.sites.map((s) => [s.id, s.name]));
  $("e_profile").replaceChildren(...topology.profiles.map((p) => el("option", { value: p.name }, p.name)));
  const r = await api("GET", `/api/sessions/${encodeURIComponent(sid)}`);
  if (r.status !== 200) { $("title").textContent = problem(r.data); $("edit-box").hidden = true; return; }
  if (!["organizer", "admin"].includes(me.data.role)) $("edit-box").hidden = true;
  $("edit").addEventListener("submit", save);
  $("cancel").addEventListener("click", cancelSession);
  show(r.data);
}
start();
