// The duty officer's page: a preset opens an emergency now; who joined, call those who have not,
// what it pre-empted, end it. Polls every 3 s (the operators' sampling interval).
"use strict";
let me = null, presets = [];

function openBody(p) {
  return { preset: p.preset, title: $("title").value, profile: $("profile").value, hours: Number($("hours").value) };
}

// "Open" asks first: the dry check names every session that would give way (rooms and links), with its
// organizer, before anything is taken. Nothing is opened until "Open now" is pressed.
async function openPreset(p, button) {
  for (const b of document.querySelectorAll(".presets button")) b.disabled = true;
  $("open-result").textContent = `Checking what “${$("title").value}” with ${p.label} would take…`;
  const r = await api("POST", "/api/emergencies/preview", openBody(p));
  for (const b of document.querySelectorAll(".presets button")) b.disabled = false;
  $("open-result").textContent = "";
  if (r.status !== 200) { $("open-result").textContent = problem(r.data); return; }
  const d = r.data;
  $("confirm-title").textContent = `Open “${$("title").value}” with ${p.label} now?`;
  $("confirm-body").replaceChildren(
    !d.fits ? el("div", { class: "refusal" }, "It cannot open:", refusalList(d.refusal.violations || [])) :
    d.gives_way.length ? el("div", {}, el("p", {}, "These sessions will give way:"),
      el("ul", { class: "gives-way" }, ...d.gives_way.map((g) => el("li", { "data-session": g.session },
        el("strong", { class: "name", title: g.title }, `“${g.title}”`), ` (organizer ${g.organizer}): `,
        g.what.join("; "))))) : el("p", { class: "nobody" }, "Nobody has to give way."),
    ...d.limited.map((x) => el("p", { class: "limited" }, x.reason)));
  $("confirm-open").disabled = !d.fits;
  $("confirm-open").onclick = () => { $("confirm").close(); openNow(p); };
  $("confirm-cancel").onclick = () => $("confirm").close();
  $("confirm").showModal();
}

async function openNow(p) {
  for (const b of document.querySelectorAll(".presets button")) b.disabled = true;
  $("open-result").textContent = `Opening “${$("title").value}” with ${p.label}…`;
  const r = await api("POST", "/api/emergencies", openBody(p));
  for (const b of document.querySelectorAll(".presets button")) b.disabled = false;
  if (r.status !== 201) { $("open-result").textContent = problem(r.data); return; }
  const taken = new Set(r.data.preempted.map((x) => x.session_id)).size;
  $("open-result").replaceChildren(`Running: “${r.data.title}”, ${r.data.sites.length} sites. `,
    taken ? `${taken} session(s) gave way. ` : "Nobody had to give way. ",
    r.data.calling.length ? `Calling ${r.data.calling.length} site(s) with a registered phone. ` : "",
    ...r.data.limited.map((x) => el("div", { class: "limited" }, x.reason)));
  await refresh();
}

// One site's call as it goes: calling, ringing, connected, or failed and why (with the attempt and retry).
const CALL_WORDS = { calling: "calling…", ringing: "ringing…", answered: "connected by phone", ended: "phone call ended",
  retrying: "call failed", failed: "call failed" };
function callProgress(s) {
  const c = s.call;
  const tries = c.attempts > 1 ? ` (attempt ${c.attempt} of ${c.attempts})` : "";
  const next = c.state === "retrying" && c.retry_at ? `; trying again in ${Math.max(0, Math.round(c.retry_at - Date.now() / 1000))} s` : "";
  return el("span", { class: `call call-${c.state}`, "data-call": c.state },
    `${CALL_WORDS[c.state] || c.state}${c.reason && c.state !== "answered" ? `: ${c.reason}` : ""}${["answered", "ended"].includes(c.state) ? "" : tries}${next}`);
}

function siteRow(e, s) {
  const call = s.phone && !s.joined ? el("button", { class: "call", "data-site": s.site, onclick: async (ev) => {
    const r = await api("POST", `/api/sessions/${e.id}/dial-out`, { account: s.phone });
    ev.target.replaceWith(r.status === 202 ? `calling ${s.phone}…` : problem(r.data));
  } }, `Call them (${s.phone})`) : null;
  const link = e.join_urls && e.join_urls[s.site];
  return el("tr", { "data-site": s.site },
    el("td", { class: "name", title: s.name }, s.name),
    el("td", { class: s.joined ? "joined" : "waiting" }, s.joined ? "joined" : "not yet"),
    el("td", { class: s.receives === "full" ? "" : "limited" }, s.receives === "full" ? "the program" : (STEP_WORDS[s.receives] || s.receives)),
    el("td", {}, s.call ? callProgress(s) : null, " ", s.call && ["calling", "ringing", "answered", "retrying"].includes(s.call.state) ? null :
       call || (s.joined ? "" : s.phone ? "" : "no registered phone"), " ",
       link && !s.joined ? el("button", { onclick: (ev) => copy(link, ev.target) }, "Copy join link") : null));
}

function preemptionList(e) {
  const rows = e.preemptions.filter((r) => r.session_id !== e.id);
  if (!rows.length) return el("p", { class: "muted" }, "Nothing was pre-empted.");
  return el("ul", { class: "preempted" }, ...rows.map((r) => el("li", { "data-session": r.session_id, "data-kind": r.kind },
    `“${r.title}” ${r.kind === "restore" ? "got back" : r.kind === "drop" ? "dropped" : "gave way to"} `,
    `${STEP_WORDS[r.step] || r.step} on ${r.link} (${r.direction}): ${r.from_kbps} → ${r.to_kbps} kbit/s`)));
}

function emergencyBox(e) {
  const joined = e.site_status.filter((s) => s.joined).length;
  return el("div", { class: "emergency", id: `em-${e.id}` },
    el("h3", { class: "name", title: e.title }, e.title, " ", el("small", { class: "muted" }, `since ${when(e.start).slice(11)} · ${e.profile} · dial-in ${e.dial_in}`)),
    el("p", { class: "joined-count" }, `${joined} of ${e.site_status.length} sites joined`),
    el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "site"), el("th", {}, "joined"), el("th", {}, "receives"), el("th", {}, ""))),
       el("tbody", {}, ...e.site_status.map((s) => siteRow(e, s)))),
    el("h4", {}, "Pre-empted for it"), preemptionList(e),
    el("button", { class: "end", onclick: async (ev) => {
      ev.target.disabled = true;
      const r = await api("POST", `/api/emergencies/${e.id}/end`);
      $("open-result").textContent = r.status === 200
        ? `“${e.title}” ended. ${r.data.restored.length ? `${new Set(r.data.restored.map((x) => x.session_id)).size} session(s) got back what they gave.` : "Nothing to give back."}`
        : problem(r.data);
      await refresh();
    } }, "End the emergency"));
}

async function refresh() {
  const r = await api("GET", "/api/emergencies");
  if (r.status !== 200) return;
  const list = r.data.emergencies;
  $("running-count").textContent = list.length;
  $("running-count").className = "count" + (list.length ? "" : " zero");
  $("running").replaceChildren(...(list.length ? list.map(emergencyBox) : [el("p", { class: "muted" }, "No emergency is running.")]));
}

async function main() {
  const r = await api("GET", "/api/me");
  if (r.status !== 200) return;
  me = r.data;
  $("who").replaceChildren(...signedInAs(me, "/duty"));
  const may = (me.permissions || []).includes("emergency");
  if (!may) {
    $("not-allowed").hidden = false;
    $("not-allowed").textContent = `${me.name}, opening an emergency needs the emergency permission (the duty officer's). You can see what is running.`;
  }
  const p = await api("GET", "/api/emergencies/presets");
  presets = p.data.presets || [];
  $("profile").replaceChildren(...p.data.profiles.map((x) => el("option", { value: x, selected: x === "sd" }, x)));
  $("presets").replaceChildren(...presets.map((x) => el("button", { "data-preset": x.preset, disabled: !may,
    onclick: (ev) => openPreset(x, ev.currentTarget) }, x.label,
    el("small", { class: "name", title: x.sites.map((s) => s.name).join(", ") }, x.sites.map((s) => s.name).join(", ")))));
  await refresh();
  setInterval(refresh, 3000);
}
main();
