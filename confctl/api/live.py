"""Live figures of every leg on this node, for operators (the monitoring issue builds on this)."""
from __future__ import annotations

import time

from aiohttp import web

from confctl.api.route import Route
from confctl.auth import require
from confctl.keys import MEDIA_NODE
from rooms.store.users import Role


async def live(request: web.Request) -> web.Response:
    require(request, Role.OPERATOR, Role.ADMIN)
    return web.json_response({"sessions": await request.app[MEDIA_NODE].live_figures(time.monotonic())})


routes = [
    Route("GET", "/api/live", live, "Every live leg: bitrate in/out (byte deltas since the previous call), "
          "packets lost, jitter, RTT, frames forwarded and dropped, resolution, program", ("operator", "admin")),
]
