"""Users and roles (admins), and who the caller is."""
from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from confctl.api.route import PEOPLE, Route
from confctl.auth import require
from confctl.errors import ApiError, read_json
from confctl.keys import BOOKINGS, USER_STORE, run_db, run_read
from rooms.booking_form import FormError, validation_detail
from rooms.email_address import EmailAddress
from rooms.ids import SiteId
from rooms.store.users import Role


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    role: Role
    site: str | None = None
    permissions: list[Literal["emergency"]] = Field(default_factory=list, description="emergency: may open "
                                                    "sessions above routine precedence (the duty officer)")
    email: EmailAddress | None = Field(None, description="where their invites are mailed (confctl serve --smtp)")


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: EmailAddress | None = Field(description="the new address; null removes it (no invites mailed to them)")


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
                               SiteId(body.site) if body.site else None, set(topo.sites), tuple(body.permissions),
                               email=body.email)
    return web.json_response({"user": user.to_dict(), "token": token}, status=201)


async def change_user(request: web.Request) -> web.Response:
    require(request)
    try:
        body = UserChange.model_validate(await read_json(request))
    except ValidationError as exc:
        raise FormError(validation_detail(exc)) from None
    user = await run_db(request.app, request.app[USER_STORE].set_email, request.match_info["id"], body.email)
    if user is None:
        raise ApiError(404, "not_found", f"no user {request.match_info['id']!r}")
    return web.json_response({"user": user.to_dict()})


routes = [
    Route("GET", "/api/me", me, "The caller's user and role", PEOPLE + ("node",)),
    Route("GET", "/api/users", list_users, "Every user (tokens are never shown again)", ("admin",)),
    Route("POST", "/api/users", add_user, "Create a user; the response holds its token, once", ("admin",), NewUser,
          {201: "{user, token}", 422: "invalid user"}),
    Route("PATCH", "/api/users/{id}", change_user, "Change a user's e-mail address (where invites are mailed)",
          ("admin",), UserChange, {200: "{user}", 404: "unknown user", 422: "invalid address"}),
]
