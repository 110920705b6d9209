// Where the calendar's blocks go: pure functions, no DOM.
"use strict";

// One day's pieces of the occurrences: [{item, from, to}] in minutes since that day's midnight (province time),
// cut at the day's edges (a session over midnight shows on both days).
function dayPieces(items, dayStart, dayEnd) {
  const out = [];
  for (const it of items) {
    const s = Date.parse(it.start), e = Date.parse(it.end);
    if (!(s < dayEnd && (e > dayStart || (e === s && s >= dayStart)))) continue;
    out.push({ item: it, from: (Math.max(s, dayStart) - dayStart) / 60000, to: (Math.min(e, dayEnd) - dayStart) / 60000 });
  }
  return out.sort((a, b) => a.from - b.from || b.to - a.to);
}

// Side by side where they overlap: each piece gets a lane and the lane count of its cluster (pieces that
// overlap one another, directly or through others), so the cluster shares the column's width.
// minHeight: minutes a block takes at least on the screen, so short blocks do not cover each other.
function lanes(pieces, minHeight = 0) {
  const out = [];
  let cluster = [], ends = [], clusterEnd = -Infinity;
  const close = () => { for (const p of cluster) p.lanes = ends.length; out.push(...cluster); cluster = []; ends = []; };
  for (const piece of pieces) {
    const bottom = Math.max(piece.to, piece.from + minHeight);
    if (piece.from >= clusterEnd) { close(); clusterEnd = -Infinity; }
    let lane = ends.findIndex((end) => end <= piece.from);
    if (lane < 0) { lane = ends.length; ends.push(bottom); } else ends[lane] = bottom;
    cluster.push({ ...piece, lane });
    clusterEnd = Math.max(clusterEnd, bottom);
  }
  close();
  return out;
}
