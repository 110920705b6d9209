"""Media node processes register here (and keep re-registering as a heartbeat)."""
from __future__ import annotations

import time
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ValidationError

from confctl.api.route import READERS, Route
from confctl.auth import require
from confctl.errors import ApiError, read_json
from confctl.keys import BOOKINGS, MEDIA_NODE, NODE_KEY, NODE_STORE, run_db, run_read
from media.contracts.node import REGISTER_PATH, NodeRegistered, NodeRegistration
from media.grants import node_key
from rooms.booking_form import FormError, validation_detail
from rooms.node_liveness import HEARTBEAT_S
from rooms.store.users import Role


class ProcessNode(BaseModel):
    """A registered node process, as GET /api/media-nodes lists it."""
    id: str
    url: str
    last_seen: int
    alive: bool
    in_process: Literal[False] = False
    load: dict[str, Any] | None  # NodeLoad at its last beat, as stored


class InProcessNode(BaseModel):
    """A node of the topology served inside this control plane, with its load here."""
    id: str
    site: str
    in_process: Literal[True] = True
    alive: Literal[True] = True
    capacity_legs: int
    rooms: int
    legs: int
    trunks: int


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
    answer = NodeRegistered(id=body.id, grant_key=node_key(request.app[NODE_KEY], body.id).hex())
    return web.json_response(answer.model_dump(mode="json"))


async def list_nodes(request: web.Request) -> web.Response:
    require(request)
    now = time.time()
    nodes = await run_read(request.app, request.app[NODE_STORE].all)
    out: list[BaseModel] = [ProcessNode(id=n.id, url=n.url, last_seen=n.last_seen, alive=n.alive(now), load=n.load)
                            for n in nodes]
    # The nodes that run inside this control plane: every node of the topology, with its load here.
    topo = await run_read(request.app, request.app[BOOKINGS].topology)
    media = request.app[MEDIA_NODE]
    for node_id, spec in topo.nodes.items():
        rooms = [r for r in media.session_rooms() if (r.node_id or topo.root_node()) == node_id and not r.echo]
        out.append(InProcessNode(id=node_id, site=spec.site, capacity_legs=spec.capacity_legs, rooms=len(rooms),
                                 legs=sum(len(r.legs) + len(r.phones) for r in rooms),
                                 trunks=sum(1 for c in media.cascades.values() for child in c.branches
                                            if node_id in (child, c.placement.root))))
    return web.json_response({"nodes": [n.model_dump(mode="json") for n in out]})


routes = [
    Route("POST", REGISTER_PATH, register, f"A media node registers, then beats every {HEARTBEAT_S:g} s with its load "
          "(down when its beats stop beyond what they taught, and a direct probe fails); a node's credential registers its own id only",
          (Role.NODE.value, Role.ADMIN.value), NodeRegistration, {200: "{id, grant_key}", 403: "another node's id",
                                                409: "the id is alive at another URL",
                                                422: "invalid, or not a node of the topology"}),
    Route("GET", REGISTER_PATH, list_nodes, "Registered media nodes and whether they are alive", READERS),
]
