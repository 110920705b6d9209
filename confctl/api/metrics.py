"""GET /metrics: Prometheus's text format, for operators' scrapers (monitoring/metrics.py)."""
from __future__ import annotations

import time

from aiohttp import web

from confctl.api.route import Route
from confctl.auth import require
from confctl.keys import BOOKINGS, QUALITY, run_read
from monitoring.metrics import render


async def metrics(request: web.Request) -> web.Response:
    require(request)
    store = request.app[BOOKINGS]
    now = int(time.time())
    peaks = await run_read(request.app, store.all_link_peaks, now, now + 1)
    booked = await run_read(request.app, lambda: len(store.list(now, None)))
    body = render(request.app[QUALITY], lambda: peaks, lambda: booked)
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


routes = [
    Route("GET", "/metrics", metrics, "Prometheus metrics: live legs, per-leg quality, trunk and link load, bookings",
          ("operator", "admin"), responses={200: "Prometheus text format 0.0.4"}, content_type="text/plain"),
]
