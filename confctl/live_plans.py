"""Pre-emption reaches live media: sessions whose plan an emergency changed follow it at once.

Each changed session's legs take their new layout (the node forwards only that, and the site's page
is told why), dropped sites' legs end with the reason, and operators and webhooks get one event per
session. Nodes in this process are told directly; node processes through their /legs/plan.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Iterable

from aiohttp import web

from confctl.keys import MEDIA_NODE, OPERATIONS
from confctl.node_calls import follow_plan_on_nodes
from media.contracts.node import FollowPlan, PlanFollowed
from rooms.caps import WORDS
from rooms.ids import SessionId
from rooms.store.preemptions import Change

log = logging.getLogger("confctl.live_plans")


def why(change: Change, emergency_title: str) -> str:
    """What the sites of a changed session are told, in words."""
    if "restore" in change.kinds:
        return f"the emergency consultation \u201c{emergency_title}\u201d has ended: what this session gave up is back"
    return f"the emergency consultation \u201c{emergency_title}\u201d needs this network now: this session gave way"


async def follow(app: web.Application, changes: Iterable[Change], emergency: dict[str, Any],
                 records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Apply each change to the live legs and announce it; returns what each session's legs did."""
    out = []
    for c in changes:
        said = why(c, emergency["title"])
        local = await app[MEDIA_NODE].follow_plan(SessionId(c.session), c.layouts, c.dropped, said)
        remote = await follow_plan_on_nodes(app, FollowPlan(session=SessionId(c.session), layouts=c.layouts,
                                                            dropped=c.dropped, why=said))
        legs = PlanFollowed(changed=[*local.changed, *(s for a in remote for s in a.changed)],
                            ended=[*local.ended, *(s for a in remote for s in a.ended)])
        mine = [r for r in records if r["session_id"] == c.session]
        event = {"type": "preemption", "event": "restored" if "restore" in c.kinds else "preempted",
                 "session": c.session, "title": c.title, "emergency": emergency["id"],
                 "emergency_title": emergency["title"], "at": time.time(), "message": said,
                 "steps": [{"link": r["link"], "direction": r["direction"], "kind": r["kind"],
                            "to": WORDS.get(r["step"], r["step"]), "from_kbps": r["from_kbps"], "to_kbps": r["to_kbps"],
                            "sites": r["sites"]} for r in mine],
                 "layouts": c.layouts, "dropped": c.dropped, "live_legs": legs.model_dump(mode="json")}
        ops = app.get(OPERATIONS)
        if ops is not None:
            ops.announce(event)
        log.warning("%s: %s (%s)", c.session, said, legs)
        out.append(event)
    return out
