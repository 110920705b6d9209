"""The network: topology (read, replace), link loads over time, capacity per link class."""
from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from confctl.api.route import Route
from confctl.api.sessions import query_instant, query_time
from confctl.auth import require
from confctl.errors import ApiError, read_json
from confctl.keys import BOOKINGS, run_db, run_read
from rooms.capacity import capacity
from rooms.ids import PlanKind
from rooms.recurrence import iso, offset_minutes
from rooms.store.users import Role
from rooms.topology import Topology, TopologyError, parse_topology
from rooms.topology_document import TopologyDocument

MAX_LOAD_SPAN_S = 31 * 24 * 3600


def topology_view(t: Topology) -> dict[str, Any]:
    sites = []
    for s in t.sites.values():
        link = t.links.get(s.id)  # type: ignore[call-overload]
        sites.append({
            "id": s.id, "name": s.name, "name_zh": s.name_zh, "level": s.level, "parent": s.parent,
            "children": list(t.children[s.id]), "rooms": [{"id": r.id, "name": r.name} for r in s.rooms],
            "uplink": None if link is None else {"link": link.id, "rate_kbps": link.rate_kbps,
                                                  "admitted_share": link.admitted_share, "limit_kbps": link.limit_kbps},
            "rtt_ms": s.rtt_ms, "media_node": t.cascade_node(s.id),
        })
    return {
        "network": t.network, "name": t.name, "root": t.root, "sites": sites,
        "nodes": [{"id": n.id, "site": n.site, "capacity_legs": n.capacity_legs} for n in t.nodes.values()],
        "profiles": [p.to_dict() for p in t.profiles],
    }


async def get_topology(request: web.Request) -> web.Response:
    require(request)
    topo = await run_read(request.app, request.app[BOOKINGS].topology)
    return web.json_response(topology_view(topo))


async def put_topology(request: web.Request) -> web.Response:
    require(request)
    doc = await read_json(request)
    try:
        # Validating thousands of sites is CPU work: on a read thread, so the event loop keeps answering.
        topo = await run_read(request.app, parse_topology, doc)
    except TopologyError as exc:
        raise ApiError(422, "invalid_topology", exc.problems) from None
    change = await run_db(request.app, request.app[BOOKINGS].set_topology, topo)
    if not change.applied:
        raise ApiError(409, "topology_breaks_bookings",
                       "future sessions would no longer fit; cancel or move them first", broken=list(change.broken))
    return web.json_response({"version": change.version, "sites": len(topo.sites)})


async def link_load(request: web.Request) -> web.Response:
    user = require(request)
    if user.role is Role.TECHNICIAN:
        # A technician sees the links between their site and the province (what their meetings cross),
        # in aggregate: other sites' links, and which sessions load a link, are not theirs to read.
        topo = await run_read(request.app, request.app[BOOKINGS].topology)
        link = request.match_info["id"]
        if link in topo.links and link not in topo.path(user.site):  # type: ignore[arg-type]
            raise ApiError(403, "forbidden", f"a technician sees the links of site {user.site}'s path only")
    now = int(time.time())
    start = query_time(request, "from") or now
    end = query_time(request, "to") or start + 24 * 3600
    if end <= start or end - start > MAX_LOAD_SPAN_S:
        raise ApiError(400, "invalid_query", "to must be after from, at most 31 days later")
    load = await run_read(request.app, request.app[BOOKINGS].link_load, request.match_info["id"], start, end)
    given = query_instant(request, "from")
    off = offset_minutes(given) if given else 0  # answer in the caller's offset
    load["start"], load["end"] = iso(start, off), iso(end, off)
    for d in ("up", "down"):
        for step in load[d]["steps"]:
            step["t"] = iso(step["t"], off)
        if user.role is Role.TECHNICIAN:
            load[d].pop("sessions", None)
    return web.json_response(load)


async def get_capacity(request: web.Request) -> web.Response:
    require(request)
    topo = await run_read(request.app, request.app[BOOKINGS].topology)
    profile = request.query.get("profile")
    plan = request.query.get("plan")
    if profile is not None and topo.profile(profile) is None:
        raise ApiError(400, "invalid_query", f"unknown profile {profile!r}")
    if plan is not None and plan not in ("central", "cascade"):
        raise ApiError(400, "invalid_query", "plan is central or cascade")
    try:
        below = int(request.query.get("sites_below", "1"))
    except ValueError:
        raise ApiError(400, "invalid_query", "sites_below must be an integer") from None
    rows = capacity(topo, [profile] if profile else None, [PlanKind(plan)] if plan else None, max(1, below))
    return web.json_response({"rows": [r.to_dict() for r in rows]})


routes = [
    Route("GET", "/api/topology", get_topology, "The network: sites, rooms, links, media nodes, profiles"),
    Route("PUT", "/api/topology", put_topology, "Replace the topology (refused while future bookings would break)",
          ("admin",), TopologyDocument,
          {200: "applied", 409: "future sessions would break (listed)", 422: "invalid topology"}),
    Route("GET", "/api/links/{id}/load", link_load, "Reserved load on a link per direction over time (technicians: "
          "the links of their site's path, without session ids)",
          responses={200: "steps per direction with the limit", 403: "a technician, another site's link",
                     404: "unknown link"},
          query=(("from", "ISO 8601 with offset (default now)"), ("to", "ISO 8601 with offset (default from + 24 h)"))),
    Route("GET", "/api/capacity", get_capacity, "Concurrent sessions each link class admits, and the binding direction",
          query=(("profile", "one profile"), ("plan", "central|cascade"), ("sites_below", "participants beneath the link"))),
]
