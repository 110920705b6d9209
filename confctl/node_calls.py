"""Calls from the control plane to every live media node process (end a leg, follow a changed plan).

A node that is down or unreachable has no legs to act on, so it is skipped, not an error.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import aiohttp
from aiohttp import web

from confctl.keys import NODE_KEY, NODE_STORE, run_read
from media.grants import node_key, sign_control
from media.tls import log_verification_failure

TIMEOUT = aiohttp.ClientTimeout(total=5)

log = logging.getLogger("confctl.node_calls")


async def post_to_nodes(app: web.Application, path: str, body: dict[str, Any], *,
                        until: Any = None) -> list[dict[str, Any]]:
    """POST `body` to `path` on each live node; the answers of those that answered 200.
    `until(answer)`: stop at the first answer it accepts."""
    nodes = [n for n in await run_read(app, app[NODE_STORE].all) if n.alive(time.time())]
    answers: list[dict[str, Any]] = []
    if not nodes:
        return answers
    async with aiohttp.ClientSession() as http:
        for n in nodes:
            content = json.dumps(body).encode()
            call = sign_control(node_key(app[NODE_KEY], n.id), n.id, "POST", path, time.time(), content)
            try:
                async with http.post(f"{n.url}{path}", data=content, timeout=TIMEOUT,
                                     headers={"Authorization": f"Bearer {call}", "Content-Type": "application/json"}) as r:
                    if r.status != 200:
                        log.warning("node %s answered %s %d (its clock more than 30 s off ours, or its key "
                                    "changed?)", n.id, path, r.status)
                        continue
                    answer = await r.json()
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                log_verification_failure(log, exc, n.url)
                continue  # an unreachable node has no leg to act on
            answers.append(answer)
            if until is not None and until(answer):
                break
    return answers
