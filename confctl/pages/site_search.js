// The booking page's site search over the province's site tree: which sites a query finds, by name
// (English, whose place names are pinyin, or Chinese) or id, and which to keep shown so that each found
// site sits in its place under its prefecture and the province. Pure functions, no DOM.
"use strict";

// "Nong'an County", "nongan", "NONG AN" and "nóng'ān" meet: case, tone marks, spaces and punctuation set aside.
function searchKey(text) {
  return (text || "").normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase().replace(/[\s'’‘`\-_.,·()/]/g, "");
}

function siteMatches(site, query) {
  const q = searchKey(query);
  return !q || [site.name, site.name_zh, site.id].some((t) => searchKey(t).includes(q));
}

// {matched, shown}: the sites found, and those plus every site above one. An empty query shows all.
function sitesShown(topology, query) {
  const byId = Object.fromEntries(topology.sites.map((s) => [s.id, s]));
  const matched = new Set(topology.sites.filter((s) => siteMatches(s, query)).map((s) => s.id));
  const shown = new Set();
  for (const id of matched) {
    for (let at = id; at && !shown.has(at); at = (byId[at] || {}).parent) shown.add(at);
  }
  return { matched, shown };
}
