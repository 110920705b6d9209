"""Watching the media node processes: a node that stops beating is taken for down, and what it was
recording is made playable.

Sites of a dead node find out on their own (their signalling connection breaks, and the join
page rejoins through the control plane, which places them around the dead node:
confctl/placement.py). What is left here is the node's half-written recordings: it tagged its
partial files with its id (media/recording.py), so they are remuxed into finalized files the
moment it is seen down, while every other node keeps writing in the same folder.
"""
from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web

from confctl.keys import NODE_STORE, SETTINGS, run_read
from media.recording import recover_interrupted

log = logging.getLogger("confctl.node_watch")
WATCH_EVERY_S = 1.0


def newly_down(alive: dict[str, bool], handled: set[str]) -> tuple[set[str], set[str]]:
    """(nodes to handle now, the handled set afterwards): a node is handled once per time it goes down."""
    down = {n for n, ok in alive.items() if not ok}
    return down - handled, (handled | down) & down


async def watch_nodes(app: web.Application) -> None:
    handled: set[str] = set()
    while True:
        nodes = await run_read(app, app[NODE_STORE].all)
        now = time.time()
        todo, handled = newly_down({n.id: n.alive(now) for n in nodes}, handled)
        for node_id in sorted(todo):
            log.warning("media node %s is down (no beat for %.0f s)", node_id,
                        now - next(n.last_seen for n in nodes if n.id == node_id))
            recovered = await asyncio.to_thread(recover_interrupted, app[SETTINGS].recordings_dir, node_id)
            if recovered:
                log.warning("recovered %d recording(s) node %s left half-written", len(recovered), node_id)
        await asyncio.sleep(WATCH_EVERY_S)
