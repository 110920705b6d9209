// One header for every signed-in page: who you are, sign-out, and the pages your role may open.
// Self-contained (no common.js): the operators' page has helpers of its own under the same names.
"use strict";
(() => {
  const DUTY = (u) => u.role === "admin" || (u.role === "organizer" && (u.permissions || []).includes("emergency"));
  // Who may open each page, as confctl/page_routes.py serves them (tests/test_role_pages.py opens every link
  // each role is shown). The admins' page lists them all with these words.
  const PAGES = [
    { href: () => "/admin", label: "All pages", about: "every page of confctl, for administrators", may: (u) => u.role === "admin" },
    { href: () => "/duty", label: "Emergencies", about: "open an emergency consultation now from a preset; what is running",
      may: DUTY },
    { href: (u) => `/sessions?site=${encodeURIComponent(u.site || "")}`, label: "My site's sessions",
      about: "this site's sessions, with today's join buttons", may: (u) => u.role === "technician" },
    { href: () => "/sessions", label: "Calendar", about: "every session by week or day; each opens its own page",
      may: (u) => ["organizer", "admin", "operator"].includes(u.role) },
    { href: () => "/book", label: "Book a session", about: "choose sites and a time; admission checks as you type",
      may: (u) => ["organizer", "admin"].includes(u.role) },
    { href: () => "/operator", label: "Dashboard", about: "live links, sessions, legs and alarms (the wall screen)",
      may: (u) => ["operator", "admin"].includes(u.role) },
    { href: () => "/api", label: "API", about: "the HTTP API's reference, to try calls", may: (u) => u.role === "admin" },
  ];

  function node(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    e.append(...children);
    return e;
  }

  const STYLE = `
    header nav.pages { display: flex; gap: 1em; flex-wrap: wrap; align-items: center; }
    header nav.pages a, header nav.pages a:visited { color: #fff; }
    header nav.pages a[aria-current] { font-weight: bold; text-decoration: none; }
    header .whoami { margin-left: auto; white-space: nowrap; }
    header .whoami button { margin: 0 0 0 .5em; }`;

  function words(u) {
    const duty = u.role === "organizer" && (u.permissions || []).includes("emergency") ? ", duty officer" : "";
    return `${u.name} (${u.role}${u.site ? " at " + u.site : ""}${duty})`;
  }

  function draw(u) {
    const header = document.querySelector("body > header");
    if (!header) return;
    const mine = PAGES.filter((p) => p.may(u));
    const here = location.pathname + (location.pathname === "/sessions" && u.role === "technician" ? location.search : "");
    const links = mine.map((p) => {
      const href = p.href(u);
      const a = node("a", { href, "data-page": href.split("?")[0] }, p.label);
      if (href === here || href === location.pathname) a.setAttribute("aria-current", "page");
      return a;
    });
    // A page's own links and name (written before this header existed) give way to it.
    for (const a of header.querySelectorAll("a.nav")) a.remove();
    const old = document.getElementById("who");
    if (old) old.hidden = true;
    const out = node("button", { type: "button", class: "signout" }, "Sign out");
    out.addEventListener("click", async () => {
      await fetch("/api/signout", { method: "POST" });
      location.href = "/signin";  // then "/", the next person's own start page
    });
    header.append(node("nav", { class: "pages", id: "nav", "aria-label": "pages" }, ...links),
                  node("span", { class: "whoami", id: "whoami" }, words(u), out));
    document.head.append(node("style", {}, STYLE));
    const list = document.getElementById("pages");  // the admins' page: every page, with what it is for
    if (list) {
      list.replaceChildren(...mine.filter((p) => p.href(u) !== "/admin").map((p) => node("li", {},
        node("a", { href: p.href(u), "data-page": p.href(u).split("?")[0] }, p.label), ` — ${p.about}`)));
    }
  }

  fetch("/api/me").then((r) => (r.ok ? r.json() : null)).then((u) => { if (u) draw(u); }).catch(() => {});
})();
