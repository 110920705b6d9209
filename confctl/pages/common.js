// Shared by the organizers' pages: DOM building, API calls with the sign-in cookie, errors in words.
"use strict";
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

async function api(method, path, body) {
  const r = await fetch(path, {
    method,
    headers: { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status === 401) location.href = "/signin?next=" + encodeURIComponent(location.pathname + location.search);
  let data = null;
  try { data = await r.json(); } catch (e) { data = { error: "bad_response", detail: "the server's answer was not readable" }; }
  return { status: r.status, data };
}

// What a person reads instead of an error code.
const PROBLEMS = {
  admission_refused: "It does not fit the network at that time.",
  invalid_body: "Some fields are not filled in correctly.",
  invalid_request: "The request cannot be booked as it is.",
  forbidden: "You may not do this.",
  not_found: "It no longer exists.",
  session_cancelled: "The session is cancelled.",
  database_busy: "The system is busy; try again in a moment.",
  unauthenticated: "Please sign in again.",
};

function problem(data) {
  const detail = data && data.detail;
  let words = typeof detail === "string" ? detail
    : Array.isArray(detail) ? detail.map((d) => (d.field ? `${d.field}: ` : "") + (d.problem || d.msg || JSON.stringify(d))).join("; ")
    : "";
  const lead = PROBLEMS[data && data.error] || "That did not work.";
  return words ? `${lead} ${words.charAt(0).toUpperCase()}${words.slice(1)}` : lead;
}

// Superseded by header.js (the one header of every page); kept while a page still fills its own #who.
function signedInAs(me, next) {
  return [`${me.name} (${me.role}) `, el("button", { id: "signout", onclick: async () => {
    await fetch("/api/signout", { method: "POST" }); location.href = "/signin?next=" + encodeURIComponent(next); } }, "Sign out")];
}

function when(iso) { return iso.slice(0, 16).replace("T", " "); }

async function copy(text, button) {
  try { await navigator.clipboard.writeText(text); button.textContent = "Copied"; }
  catch (e) { button.textContent = "Select and copy"; }
}

function pad(n) { return String(n).padStart(2, "0"); }

function isoWithOffset(local, offset, plusHours) {
  // local: "YYYY-MM-DDTHH:MM" in the chosen offset; add hours without leaving that offset.
  const sign = offset[0] === "-" ? -1 : 1;
  const offMin = sign * (parseInt(offset.slice(1, 3)) * 60 + parseInt(offset.slice(4, 6)));
  const utc = Date.parse(local + ":00Z") - offMin * 60000 + plusHours * 3600000;
  const d = new Date(utc + offMin * 60000);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:00${offset}`;
}

function loadBar(booked, mine, limit) {
  // What is already booked then, plus this session, against the link's admitted limit, in %.
  const pct = (x) => Math.min(100, (100 * x) / limit);
  const total = Math.round((100 * (booked + mine)) / limit);
  return el("span", { class: "meter", title: `${booked} booked + ${mine} this session of ${limit} kbit/s` },
    el("span", { class: "bar booked", style: `width:${pct(booked)}%` }),
    el("span", { class: "bar" + (booked + mine > limit ? " over" : ""), style: `width:${pct(mine)}%` }),
    el("span", { class: "pct" }, `${total} %`));
}

function joinLinks(session, names) {
  return el("table", { id: "join_links" }, el("tr", {}, el("th", {}, "site"), el("th", {}, "join link"), el("th", {}, "")),
    ...Object.entries(session.join_urls || {}).map(([site, url]) => {
      const b = el("button", { class: "copy", type: "button" }, "Copy");
      b.addEventListener("click", () => copy(url, b));
      return el("tr", { "data-site": site }, el("td", {}, names[site] || site), el("td", {}, el("a", { href: url, class: "join" }, url)), el("td", {}, b));
    }));
}


function refusalList(violations) {
  // Each refusal as a sentence, with the sessions already using that link then, linked to their pages.
  return el("ul", { id: "sentences" }, ...violations.map((x) => el("li", { class: "sentence" }, x.sentence,
    x.sessions && x.sessions.length ? el("span", { class: "inway" }, " Already using it then: ",
      ...x.sessions.map((s, i) => [i ? ", " : "", el("a", { href: `/sessions/${s.id}` }, s.title)]).flat()) : null)));
}

// What a site behind a pre-empted link gets, in words (rooms/caps.py WORDS).
const STEP_WORDS = { speaker: "the speaker only", audio: "audio only", dropped: "dropped", "as booked": "as booked" };
