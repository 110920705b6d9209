"""Every node's live figures, for the quality pipeline and /api/live: the in-process node's, and each
live node process's over its /figures (signed with the node key)."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
from aiohttp import web

from confctl.keys import MEDIA_NODE, NODE_KEY, NODE_STORE, run_read
from media.grants import node_key, sign_control
from media.tls import log_verification_failure
from monitoring.pipeline import Figures

log = logging.getLogger("confctl.node_figures")


async def gather_figures(app: web.Application) -> Figures:
    """Every session's live figures: the in-process node's and each live node process's."""
    node = app[MEDIA_NODE]
    sessions = [dict(s, node="in-process") for s in await node.live_figures(time.monotonic())]
    ended = [dict(e, node=e.get("node") or "in-process") for e in node.ended_legs()]
    nodes = [n for n in await run_read(app, app[NODE_STORE].all) if n.alive(time.time())]
    if nodes:
        async with aiohttp.ClientSession() as http:
            remote = await asyncio.gather(*(_remote(http, n.url, n.id, node_key(app[NODE_KEY], n.id)) for n in nodes))
        for n, body in zip(nodes, remote):
            sessions += [dict(s, node=n.id) for s in body.get("sessions", [])]
            ended += [dict(e, node=e.get("node") or n.id) for e in body.get("ended", [])]
    return Figures(sessions, ended)


async def _remote(http: aiohttp.ClientSession, url: str, node_id: str, key: bytes) -> dict[str, Any]:
    call = sign_control(key, node_id, "GET", "/figures", time.time())
    try:
        async with http.get(f"{url}/figures", headers={"Authorization": f"Bearer {call}"},
                            timeout=aiohttp.ClientTimeout(total=3)) as r:
            if r.status != 200:
                log.warning("node %s answered /figures %d (its clock more than 30 s off ours?)", node_id, r.status)
                return {}
            return await r.json()
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        log_verification_failure(log, exc, url)
        return {}  # a node that does not answer is shown by /api/media-nodes, not here
