"""GET /metrics: Prometheus's text format, for operators' scrapers (monitoring/metrics.py)."""
from __future__ import annotations

import time

from aiohttp import web

from confctl.api.route import READERS, Route
from confctl.auth import require
from confctl.invites import invite_metrics
from confctl.keys import BOOKINGS, NODE_STORE, OPERATIONS, QUALITY, SIP_GATEWAY, SIP_WORKERS, run_read
from media.aiortc_hooks import ice_addressing
from monitoring.link_load import live_link_load, utilization_rows
from monitoring.metrics import render


async def metrics(request: web.Request) -> web.Response:
    require(request)
    store = request.app[BOOKINGS]
    now = int(time.time())
    peaks = await run_read(request.app, store.all_link_peaks, now, now + 1)
    booked = await run_read(request.app, store.count_booked, now)
    topo = await run_read(request.app, store.topology)
    live = live_link_load(topo, request.app[QUALITY].latest.values())
    ops = request.app[OPERATIONS]
    workers = request.app.get(SIP_WORKERS)
    sip: dict[str, int] = {}
    if workers is not None:
        status = workers.status()  # type: ignore[attr-defined]
        for stats in [status["stats"], *(w["stats"] for w in status["workers"])]:
            for k, v in stats.items():
                if isinstance(v, int):
                    sip[k] = sip.get(k, 0) + v
    body = render(request.app[QUALITY], lambda: peaks, lambda: booked, lambda: live,
                  alarms_raised=dict(ops.raised_total), alarms_open=len(ops.alarms.raised()), sip=sip,
                  ports_refused=await _ports_refused(request.app)) + invite_metrics(request.app)
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


async def _ports_refused(app: web.Application) -> dict[tuple[str, str], int]:
    """Media ports refused: each node process's count (from its beats), this process's ICE and SIP RTP."""
    out: dict[tuple[str, str], int] = {}
    for n in await run_read(app, app[NODE_STORE].all):
        if n.load and n.load.get("media_ports_refused"):
            out[(n.id, "ice")] = int(n.load["media_ports_refused"])
    here = ice_addressing()
    out[("in-process", "ice")] = here.ports.refused if here is not None else 0
    gateway = app.get(SIP_GATEWAY)
    if gateway is not None:
        out[("in-process", "rtp")] = gateway.rtp_ports.refused
    return out


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
    rows = utilization_rows(topo, reserved, live)
    return web.json_response({"links": rows})


routes.append(Route("GET", "/api/links/utilization", utilization, "Every link's load now, per direction: reserved "
                    "by the bookings beside live (the sampled legs and node-to-node legs routed over it)", READERS))
