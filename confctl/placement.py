"""Where each site of a session attaches: the booked plan's attachments, or a fallback when nodes are down.

Three cases, decided by `effective_placement` (pure) from which node processes are alive:
- no node process registered: every node runs in this control plane (`confctl serve` alone);
  the session cascades over its plan's nodes in-process;
- the plan's root node is alive: each site goes to its planned node, or to the root when
  that node is down (a county of a dead prefecture node attaches to the province node);
- the root node is down: the whole session runs on this control plane's own node, at the
  root's site, as a central session (the one node that cannot be down while joins work).

A fallback may cost more than was booked (a county's full program now crosses its
prefecture's uplink): `fallback_cost` says which links, by how much, and it is reported.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping

from aiohttp import web

from confctl.keys import BOOKINGS, MEDIA_NODE, NODE_STORE, run_read
from media.cascade_session import Placement
from rooms.ids import Direction, NodeId, PlanKind, SessionId, SiteId
from rooms.plan import media_plan
from rooms.topology import Topology

IN_PROCESS = "in-process"  # confctl serve's own media node


@dataclass(frozen=True)
class EffectivePlacement:
    attachments: dict[SiteId, NodeId]
    root: NodeId
    in_process: bool  # run by the control plane's own media node
    down: tuple[NodeId, ...]  # planned nodes that are down (their sites moved)

    def node_of(self, site: SiteId) -> NodeId:
        return self.attachments.get(site, self.root)


def attachments_of(session: dict[str, Any]) -> dict[SiteId, NodeId]:
    return {SiteId(s): NodeId(n) for s, n in session["media_plan"]["attachments"].items()}


def effective_placement(planned: Mapping[SiteId, NodeId], root: NodeId, alive: set[str],
                        processes: bool) -> EffectivePlacement:
    """`processes`: node processes are registered at all; `alive`: those beating now."""
    if not processes:
        return EffectivePlacement(dict(planned), root, True, ())
    used = set(planned.values())
    if len(used) == 1 and used <= alive:
        # Every site on one node (a prefecture's own meeting): that node is the session's root;
        # the province node is not involved and need not even run.
        only = next(iter(used))
        return EffectivePlacement(dict(planned), only, False, ())
    down = tuple(sorted({n for n in [*used, root] if n not in alive}))
    if root not in alive:
        # The root is down but node processes run: another node becomes the root (the alive node of the plan
        # that carries most of its sites, then any alive node), never this control plane's own node, which
        # another control plane would not share: the session would split into islands.
        counts = {n: sum(1 for x in planned.values() if x == n) for n in used if n in alive}
        new_root = (max(sorted(counts), key=lambda n: counts[n]) if counts
                    else min(alive) if alive else None)
        if new_root is None:  # every node process is down: the control plane's own node is all there is
            return EffectivePlacement({s: root for s in planned}, root, True, down)
        return EffectivePlacement({s: (n if n in alive else new_root) for s, n in planned.items()}, NodeId(new_root),
                                  False, down)
    return EffectivePlacement({s: (n if n in alive else root) for s, n in planned.items()}, root, False, down)


def fallback_cost(topo: Topology, session: dict[str, Any], placement: EffectivePlacement) -> list[dict[str, Any]]:
    """Links where the fallback carries more than the session's reservation, per direction."""
    profile = topo.profile(session["profile"])
    if profile is None or not placement.down:
        return []
    plan = media_plan(topo, profile, PlanKind(session["plan"]), list(placement.attachments), placement.attachments)
    booked = {(row["link"], d): row[f"{d}_kbps"] for row in session["media_plan"]["links"] for d in ("up", "down")}
    out = []
    for link in sorted({x.link for x in plan.loads}):
        for d in (Direction.UP, Direction.DOWN):
            now, was = plan.load(link, d), booked.get((link, d.value), 0)
            if now > was:
                out.append({"link": link, "direction": d.value, "booked_kbps": was, "fallback_kbps": now,
                            "limit_kbps": topo.links[link].limit_kbps, "over_limit": now > topo.links[link].limit_kbps})
    return out


def fallback_report(topo: Topology, session: dict[str, Any], where: EffectivePlacement) -> dict[str, Any] | None:
    """How a session is re-placed around nodes that are down, and what that costs; None: as planned."""
    if not where.down:
        return None
    return {"down": list(where.down), "attachments": dict(where.attachments), "in_process": where.in_process,
            "over_reservation": fallback_cost(topo, session, where)}


async def fallbacks_now(app: web.Application, session_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The fallbacks of these sessions as things stand: from the shared node registry and bookings, so
    every control plane answers the same, whichever one the sites joined through."""
    registered = await run_read(app, app[NODE_STORE].all)
    alive = {n.id for n in registered if n.alive(time.time())}
    out = {}
    for sid in session_ids:
        try:
            session = await run_read(app, app[BOOKINGS].get, sid)
        except LookupError:  # an echo room's id, or a session deleted under its last leg
            continue
        topo, plan, root = await planned(app, session)
        report = fallback_report(topo, session, effective_placement(plan, root, alive, processes=bool(registered)))
        if report is not None:
            out[sid] = report
    return out


async def place(app: web.Application, session_id: str, placement: EffectivePlacement) -> None:
    """Tell the in-process media node where the session's sites attach (a cascade spans several).
    Called where a leg or a phone is about to open a room, not on every lookup of the session."""
    app[MEDIA_NODE].place(SessionId(session_id), Placement(placement.attachments, placement.root))


async def planned(app: web.Application, session: dict[str, Any]) -> tuple[Topology, dict[SiteId, NodeId], NodeId]:
    topo = await run_read(app, app[BOOKINGS].topology)  # parsed once per topology version
    return topo, attachments_of(session), topo.root_node()
