"""Media node processes register here (and keep re-registering as a heartbeat)."""
from __future__ import annotations

import time

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from confctl.api.route import READERS, Route
from confctl.auth import require
from confctl.errors import read_json
from confctl.keys import NODE_KEY, NODE_STORE, run_db, run_read
from rooms.booking_form import FormError, validation_detail
from rooms.store.users import Role


class NodeRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    url: str = Field(min_length=8, max_length=300, pattern=r"^https?://[^/\s]+$")


async def register(request: web.Request) -> web.Response:
    require(request)
    try:
        body = NodeRegistration.model_validate(await read_json(request))
    except ValidationError as exc:
        raise FormError(validation_detail(exc)) from None
    await run_db(request.app, request.app[NODE_STORE].register, body.id, body.url, int(time.time()))
    # The key the node verifies grants with, and that the control plane uses to read its figures.
    return web.json_response({"id": body.id, "grant_key": request.app[NODE_KEY].hex()})


async def list_nodes(request: web.Request) -> web.Response:
    require(request)
    now = time.time()
    nodes = await run_read(request.app, request.app[NODE_STORE].all)
    return web.json_response({"nodes": [{"id": n.id, "url": n.url, "last_seen": n.last_seen, "alive": n.alive(now)}
                                         for n in nodes]})


routes = [
    Route("POST", "/api/media-nodes", register, "A media node registers (repeat every 10 s as a heartbeat)",
          ("node", "admin"), NodeRegistration, {200: "{id, grant_key}"}),
    Route("GET", "/api/media-nodes", list_nodes, "Registered media nodes and whether they are alive", READERS),
]
