"""Live figures of every leg on this node, for operators (the monitoring issue builds on this)."""
from __future__ import annotations

from aiohttp import web

from confctl.api.route import READERS, Route
from confctl.auth import require
from confctl.node_figures import gather_figures
from confctl.placement import fallbacks_now
from media.contracts.node import SESSIONS


async def live(request: web.Request) -> web.Response:
    require(request)
    sessions = (await gather_figures(request.app)).sessions
    ids = sorted({str(s.session) for s in sessions})
    return web.json_response({"sessions": SESSIONS.dump_python(sessions, mode="json"),
                              "fallbacks": await fallbacks_now(request.app, ids)})


routes = [
    Route("GET", "/api/live", live, "Every live leg: bitrate in/out (byte deltas since the previous call), "
          "packets lost, jitter, RTT, frames forwarded and dropped, resolution, program", READERS),
]
