"""Every node's live figures, for the quality pipeline and /api/live: the in-process node's, and each
live node process's over its /figures (signed with the node key)."""
from __future__ import annotations

import asyncio
import logging
import time
import aiohttp
from aiohttp import web
from pydantic import ValidationError

from confctl.keys import MEDIA_NODE, NODE_KEY, NODE_STORE, run_read
from media.contracts.node import FIGURES_PATH, EndedLeg, NodeFigures, SessionFigures
from media.grants import node_key, sign_control
from media.tls import log_verification_failure
from monitoring.pipeline import Figures

log = logging.getLogger("confctl.node_figures")
IN_PROCESS = "in-process"  # the node that runs inside this control plane


async def gather_figures(app: web.Application) -> Figures:
    """Every session's live figures: the in-process node's and each live node process's."""
    node = app[MEDIA_NODE]
    sessions, ended = _from(IN_PROCESS, await node.live_figures(time.monotonic()), node.ended_legs())
    nodes = [n for n in await run_read(app, app[NODE_STORE].all) if n.alive(time.time())]
    if nodes:
        async with aiohttp.ClientSession() as http:
            remote = await asyncio.gather(*(_remote(http, n.url, n.id, node_key(app[NODE_KEY], n.id)) for n in nodes))
        for n, body in zip(nodes, remote):
            if body is None:
                continue
            more, ended_there = _from(n.id, body.sessions, body.ended)
            sessions += more
            ended += ended_there
    return Figures(sessions, ended)


def _from(node: str, sessions: list[SessionFigures], ended: list[EndedLeg]) -> tuple[list[SessionFigures], list[EndedLeg]]:
    """Figures marked with the node that reported them (an ended leg keeps the node room it names)."""
    for s in sessions:
        s.node = node
    for e in ended:
        e.node = e.node or node
    return sessions, ended


async def _remote(http: aiohttp.ClientSession, url: str, node_id: str, key: bytes) -> NodeFigures | None:
    call = sign_control(key, node_id, "GET", FIGURES_PATH, time.time())
    try:
        async with http.get(f"{url}{FIGURES_PATH}", headers={"Authorization": f"Bearer {call}"},
                            timeout=aiohttp.ClientTimeout(total=3)) as r:
            if r.status != 200:
                log.warning("node %s answered %s %d (its clock more than 30 s off ours?)", node_id, FIGURES_PATH,
                            r.status)
                return None
            return NodeFigures.model_validate_json(await r.read())
    except ValidationError as exc:  # a node of another version, or broken: its figures are not shown
        log.warning("node %s answered %s with what is not figures: %s", node_id, FIGURES_PATH, exc)
        return None
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        log_verification_failure(log, exc, url)
        return None  # a node that does not answer is shown by /api/media-nodes, not here
