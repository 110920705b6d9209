"""Watching the media node processes: a node whose beats stop is suspected, probed, and only then
taken for down (rooms/node_liveness.py); what it was recording is made playable.

Sites of a dead node find out on their own (their signalling connection breaks, and the join
page rejoins through the control plane, which places them around the dead node:
confctl/placement.py). What is left here is the node's half-written recordings: it tagged its
partial files with its id (media/recording.py), so they are remuxed into finalized files the
moment it is seen down, while every other node keeps writing in the same folder.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import time

import aiohttp
from aiohttp import web

from confctl.keys import NODE_STORE, SETTINGS, run_db, run_read
from media.recording import recover_interrupted
from media.tls import log_verification_failure
from rooms.node_liveness import Verdict, judge, phi
from rooms.store.media_nodes import RegisteredNode

log = logging.getLogger("confctl.node_watch")
WATCH_EVERY_S = 0.5
LAG_WINDOW_S = 10.0  # the loop lag taken off silences: the worst over this long
PROBE_TIMEOUT = aiohttp.ClientTimeout(total=3)  # a starved node answers late, a dead one refuses at once


class LoopLag:
    """How late this process's event loop has been running lately (the worst over LAG_WINDOW_S)."""

    def __init__(self) -> None:
        self._seen: collections.deque[tuple[float, float]] = collections.deque()

    def note(self, now: float, lag_s: float) -> None:
        self._seen.append((now, max(0.0, lag_s)))
        while self._seen and self._seen[0][0] < now - LAG_WINDOW_S:
            self._seen.popleft()

    def worst(self) -> float:
        return max((lag for _, lag in self._seen), default=0.0)


async def probe(http: aiohttp.ClientSession, node: RegisteredNode) -> bool:
    try:
        async with http.get(f"{node.url}/health", timeout=PROBE_TIMEOUT) as r:
            return r.status == 200
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        log_verification_failure(log, exc, node.url)
        return False


async def watch_nodes(app: web.Application) -> None:
    lag = LoopLag()
    suspected: set[str] = set()  # said once per suspicion, not every half second
    async with aiohttp.ClientSession() as http:
        while True:
            nodes = await run_read(app, app[NODE_STORE].all)
            now = time.time()
            for node in nodes:
                if node.down_since is not None:
                    continue
                silence = node.silence(now)
                verdict = judge(silence, lag.worst(), node.arrivals)
                if verdict is Verdict.UP:
                    suspected.discard(node.id)
                if verdict is Verdict.SUSPECT:
                    ok = await probe(http, node)
                    verdict = judge(node.silence(time.time()), lag.worst(), node.arrivals, ok)
                    if ok and node.id not in suspected:
                        suspected.add(node.id)
                        log.info("media node %s silent %.1f s (phi %.1f) but answers its probe: up", node.id,
                                 silence, phi(silence, node.arrivals))
                if verdict is Verdict.DOWN:
                    await _down(app, node, silence, lag.worst())
            expected = time.monotonic() + WATCH_EVERY_S
            await asyncio.sleep(WATCH_EVERY_S)
            lag.note(time.monotonic(), time.monotonic() - expected)


async def _down(app: web.Application, node: RegisteredNode, silence: float, loop_lag: float) -> None:
    if not await run_db(app, app[NODE_STORE].mark_down, node.id, int(time.time()), node.last_seen_ms):
        return  # it beat again meanwhile
    log.warning("media node %s is down: no beat for %.1f s (phi %.1f, beats every %.2f s; this loop's lag %.2f s) "
                "and its probe failed", node.id, silence, phi(silence, node.arrivals), node.arrivals.mean_s, loop_lag)
    recovered = await asyncio.to_thread(recover_interrupted, app[SETTINGS].recordings_dir, node.id)
    if recovered:
        log.warning("recovered %d recording(s) node %s left half-written", len(recovered), node.id)
