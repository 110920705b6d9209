"""Live figures of every leg on this node, for operators (the monitoring issue builds on this)."""
from __future__ import annotations

import asyncio
import time

import aiohttp
from aiohttp import web

from confctl.api.route import READERS, Route
from confctl.auth import require
from confctl.keys import FALLBACKS, MEDIA_NODE, NODE_KEY, NODE_STORE, run_read


async def _remote(http: aiohttp.ClientSession, url: str, key: bytes) -> list[dict]:
    try:
        async with http.get(f"{url}/figures", headers={"Authorization": f"Bearer {key.hex()}"},
                            timeout=aiohttp.ClientTimeout(total=3)) as r:
            return (await r.json())["sessions"] if r.status == 200 else []
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError):
        return []  # a node that does not answer is shown by /api/media-nodes, not here


async def live(request: web.Request) -> web.Response:
    require(request)
    sessions = [dict(s, node="in-process") for s in await request.app[MEDIA_NODE].live_figures(time.monotonic())]
    nodes = [n for n in await run_read(request.app, request.app[NODE_STORE].all) if n.alive(time.time())]
    if nodes:
        async with aiohttp.ClientSession() as http:
            remote = await asyncio.gather(*(_remote(http, n.url, request.app[NODE_KEY]) for n in nodes))
        for n, rows in zip(nodes, remote):
            sessions += [dict(s, node=n.id) for s in rows]
    return web.json_response({"sessions": sessions, "fallbacks": request.app[FALLBACKS]})


routes = [
    Route("GET", "/api/live", live, "Every live leg: bitrate in/out (byte deltas since the previous call), "
          "packets lost, jitter, RTT, frames forwarded and dropped, resolution, program", READERS),
]
