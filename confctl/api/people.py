"""Users and roles (admins), and who the caller is."""
from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from confctl.api.route import PEOPLE, Route
from confctl.auth import require
from confctl.errors import read_json
from confctl.keys import BOOKINGS, USER_STORE, run_db, run_read
from rooms.booking_form import FormError, validation_detail
from rooms.ids import SiteId
from rooms.store.users import Role


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    role: Role
    site: str | None = None
    permissions: list[Literal["emergency"]] = Field(default_factory=list, description="emergency: may open "
                                                    "sessions above routine precedence (the duty officer)")


async def me(request: web.Request) -> web.Response:
    return web.json_response(require(request).to_dict())


async def list_users(request: web.Request) -> web.Response:
    require(request)
    users = await run_read(request.app, request.app[USER_STORE].list)
    return web.json_response({"users": [u.to_dict() for u in users]})


async def add_user(request: web.Request) -> web.Response:
    require(request)
    try:
        body = NewUser.model_validate(await read_json(request))
    except ValidationError as exc:
        raise FormError(validation_detail(exc)) from None
    topo = await run_read(request.app, request.app[BOOKINGS].topology)
    user, token = await run_db(request.app, request.app[USER_STORE].add, body.name, body.role,
                               SiteId(body.site) if body.site else None, set(topo.sites), tuple(body.permissions))
    return web.json_response({"user": user.to_dict(), "token": token}, status=201)


routes = [
    Route("GET", "/api/me", me, "The caller's user and role", PEOPLE + ("node",)),
    Route("GET", "/api/users", list_users, "Every user (tokens are never shown again)", ("admin",)),
    Route("POST", "/api/users", add_user, "Create a user; the response holds its token, once", ("admin",), NewUser,
          {201: "{user, token}", 422: "invalid user"}),
]
