"""Media node processes register here (and keep re-registering as a heartbeat)."""
from __future__ import annotations

import time

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from confctl.api.route import READERS, Route
from confctl.auth import require
from confctl.errors import ApiError, read_json
from confctl.keys import BOOKINGS, MEDIA_NODE, NODE_KEY, NODE_STORE, run_db, run_read
from media.grants import node_key
from rooms.booking_form import FormError, validation_detail
from rooms.store.users import Role


class NodeLoad(BaseModel):
    """What a node process carries, reported with each heartbeat."""
    model_config = ConfigDict(extra="forbid")
    legs: int = Field(ge=0, le=100_000)
    rooms: int = Field(ge=0, le=100_000)
    cpu_percent: float = Field(ge=0, le=10_000, allow_inf_nan=False)  # of one core, over the last beat
    kbps_in: int = Field(ge=0, le=100_000_000)
    kbps_out: int = Field(ge=0, le=100_000_000)
    media_ports_refused: int = Field(default=0, ge=0, le=1_000_000_000)  # legs refused: --ice-ports full, since start


class NodeRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    url: str = Field(min_length=8, max_length=300, pattern=r"^https?://[^/\s]+$")
    load: NodeLoad | None = None


MAX_BEATS_IN_FLIGHT = 64  # beats waiting on the database at once, all nodes together


class BeatsInFlight:
    """Beats being written: one per node at a time, and at most MAX_BEATS_IN_FLIGHT in all. A node's next
    beat, while its previous one still waits on a slow database, is answered 503 at once: it carries nothing
    the waiting one does not, and queueing it would grow without bound while the database is away."""

    def __init__(self, limit: int = MAX_BEATS_IN_FLIGHT):
        self.limit = limit
        self.nodes: set[str] = set()
        self.refused = 0

    def enter(self, node_id: str) -> None:
        if node_id in self.nodes or len(self.nodes) >= self.limit:
            self.refused += 1
            raise ApiError(503, "beat_in_flight", f"node {node_id}'s previous beat (or too many beats) still waits "
                           "on the database; beat again later", headers={"Retry-After": "1"})
        self.nodes.add(node_id)

    def leave(self, node_id: str) -> None:
        self.nodes.discard(node_id)


BEATS = web.AppKey("beats_in_flight", BeatsInFlight)


async def register(request: web.Request) -> web.Response:
    user = require(request)
    try:
        body = NodeRegistration.model_validate(await read_json(request))
    except ValidationError as exc:
        raise FormError(validation_detail(exc)) from None
    if user.role is Role.NODE and user.name != body.id:  # `confctl nodes add NODE_ID` binds the credential
        raise ApiError(403, "wrong_node", f"this credential is node {user.name}'s; it may not register as {body.id}")
    beats = request.app[BEATS]
    beats.enter(body.id)
    try:
        return await _register(request, body)
    finally:
        beats.leave(body.id)


async def _register(request: web.Request, body: NodeRegistration) -> web.Response:
    topo = await run_read(request.app, request.app[BOOKINGS].topology)
    if body.id not in topo.nodes:
        raise ApiError(422, "unknown_node", f"node {body.id!r} is not in the topology; its nodes are "
                       f"{sorted(topo.nodes)}")
    now = time.time()
    same = [n for n in await run_read(request.app, request.app[NODE_STORE].all) if n.id == body.id]
    if same and same[0].alive(now) and same[0].url != body.url:
        raise ApiError(409, "node_id_in_use", f"node {body.id} is alive at {same[0].url}; a second process "
                       "may not take its id (stop that one, or wait until it is taken for dead)")
    await run_db(request.app, request.app[NODE_STORE].register, body.id, body.url, now,
                 body.load.model_dump() if body.load is not None else None)
    # This node's own key (media/grants.py): it verifies the grants issued for it and the control plane's calls.
    return web.json_response({"id": body.id, "grant_key": node_key(request.app[NODE_KEY], body.id).hex()})


async def list_nodes(request: web.Request) -> web.Response:
    require(request)
    now = time.time()
    nodes = await run_read(request.app, request.app[NODE_STORE].all)
    out = [{"id": n.id, "url": n.url, "last_seen": n.last_seen, "alive": n.alive(now), "in_process": False,
            "load": n.load} for n in nodes]
    # The nodes that run inside this control plane: every node of the topology, with its load here.
    topo = await run_read(request.app, request.app[BOOKINGS].topology)
    media = request.app[MEDIA_NODE]
    for node_id, spec in topo.nodes.items():
        rooms = [r for r in media.session_rooms() if (r.node_id or topo.root_node()) == node_id and not r.echo]
        out.append({"id": node_id, "site": spec.site, "in_process": True, "alive": True,
                    "capacity_legs": spec.capacity_legs, "rooms": len(rooms),
                    "legs": sum(len(r.legs) + len(r.phones) for r in rooms),
                    "trunks": sum(1 for c in media.cascades.values() for child in c.branches
                                  if node_id in (child, c.placement.root))})
    return web.json_response({"nodes": out})


routes = [
    Route("POST", "/api/media-nodes", register, "A media node registers, then beats every 2 s with its load "
          "(down when its beats stop beyond what they taught, and a direct probe fails); a node's credential registers its own id only",
          ("node", "admin"), NodeRegistration, {200: "{id, grant_key}", 403: "another node's id",
                                                409: "the id is alive at another URL",
                                                422: "invalid, or not a node of the topology"}),
    Route("GET", "/api/media-nodes", list_nodes, "Registered media nodes and whether they are alive", READERS),
]
