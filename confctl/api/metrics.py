"""GET /metrics: Prometheus's text format, for operators' scrapers (monitoring/metrics.py)."""
from __future__ import annotations

import time

from aiohttp import web

from confctl.api.route import READERS, Route
from confctl.auth import require
from confctl.keys import BOOKINGS, QUALITY, run_read
from monitoring.link_load import live_link_load
from monitoring.metrics import render


async def metrics(request: web.Request) -> web.Response:
    require(request)
    store = request.app[BOOKINGS]
    now = int(time.time())
    peaks = await run_read(request.app, store.all_link_peaks, now, now + 1)
    booked = await run_read(request.app, store.count_booked, now)
    topo = await run_read(request.app, store.topology)
    live = live_link_load(topo, request.app[QUALITY].latest.values())
    body = render(request.app[QUALITY], lambda: peaks, lambda: booked, lambda: live)
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


routes = [
    Route("GET", "/metrics", metrics, "Prometheus metrics: live legs, per-leg quality, trunk and link load, bookings",
          ("operator", "admin"), responses={200: "Prometheus text format 0.0.4"}, content_type="text/plain"),
]


async def utilization(request: web.Request) -> web.Response:
    """Every link with reserved or live load: reserved now beside live, per direction."""
    require(request)
    store = request.app[BOOKINGS]
    now = int(time.time())
    topo = await run_read(request.app, store.topology)
    reserved = await run_read(request.app, store.all_link_peaks, now, now + 1)
    live = live_link_load(topo, request.app[QUALITY].latest.values())
    rows = []
    for link, d in sorted(set(reserved) | set(live)):
        l = topo.links[link]
        r, v = reserved.get((link, d), 0), live.get((link, d), 0.0)
        rows.append({"link": link, "from": l.child, "to": l.parent, "direction": d, "rate_kbps": l.rate_kbps,
                     "limit_kbps": l.limit_kbps, "reserved_kbps": r, "live_kbps": v,
                     "live_over_reserved": v > r * 1.1, "live_over_90pct": v > 0.9 * l.rate_kbps})
    return web.json_response({"links": rows})


routes.append(Route("GET", "/api/links/utilization", utilization, "Every link's load now, per direction: reserved "
                    "by the bookings beside live (the sampled legs and node-to-node legs routed over it)", READERS))
