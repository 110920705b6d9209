"""Calls from the control plane to every live media node process (end a leg, follow a changed plan).

A node that is down or unreachable has no legs to act on, so it is skipped, not an error.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, TypeVar

import aiohttp
from aiohttp import web
from pydantic import BaseModel, ValidationError

from confctl.keys import NODE_KEY, NODE_STORE, run_read
from media.contracts.node import LEGS_END_PATH, LEGS_PLAN_PATH, EndLeg, FollowPlan, LegEnded, PlanFollowed
from media.grants import node_key, sign_control
from media.tls import log_verification_failure
from rooms.ids import SessionId, SiteId

TIMEOUT = aiohttp.ClientTimeout(total=5)

log = logging.getLogger("confctl.node_calls")


A = TypeVar("A", bound=BaseModel)


async def end_leg_on_nodes(app: web.Application, session: SessionId, site: SiteId) -> bool:
    """End the site's leg on whichever live node process holds it; False when none does."""
    answers = await post_to_nodes(app, LEGS_END_PATH, EndLeg(session=session, site=site), LegEnded,
                                  until=lambda a: a.ended)
    return any(a.ended for a in answers)


async def follow_plan_on_nodes(app: web.Application, plan: FollowPlan) -> list[PlanFollowed]:
    """Every live node process's legs of the session follow its changed plan; what each did."""
    return await post_to_nodes(app, LEGS_PLAN_PATH, plan, PlanFollowed)


async def post_to_nodes(app: web.Application, path: str, body: BaseModel, answer: type[A], *,
                        until: Callable[[A], bool] | None = None) -> list[A]:
    """POST `body` to `path` on each live node; the answers of those that answered 200.
    `until(answer)`: stop at the first answer it accepts."""
    nodes = [n for n in await run_read(app, app[NODE_STORE].all) if n.alive(time.time())]
    answers: list[A] = []
    if not nodes:
        return answers
    content = body.model_dump_json().encode()
    async with aiohttp.ClientSession() as http:
        for n in nodes:
            call = sign_control(node_key(app[NODE_KEY], n.id), n.id, "POST", path, time.time(), content)
            try:
                async with http.post(f"{n.url}{path}", data=content, timeout=TIMEOUT,
                                     headers={"Authorization": f"Bearer {call}", "Content-Type": "application/json"}) as r:
                    if r.status != 200:
                        log.warning("node %s answered %s %d (its clock more than 30 s off ours, or its key "
                                    "changed?)", n.id, path, r.status)
                        continue
                    said = answer.model_validate_json(await r.read())
            except ValidationError as exc:  # an answer not of the contract: that node did nothing we know of
                log.warning("node %s answered %s with %s", n.id, path, exc)
                continue
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                log_verification_failure(log, exc, n.url)
                continue  # an unreachable node has no leg to act on
            answers.append(said)
            if until is not None and until(said):
                break
    return answers
