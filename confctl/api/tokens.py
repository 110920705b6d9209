"""Personal bearer tokens: list, issue, rotate, revoke (rooms/store/tokens.py).

Everyone manages their own; admins anyone's. A revoked token stops at once, with the browser
sessions signed in with it; a rotation hands a new token and revokes the old one in one step.
"""
from __future__ import annotations

import re
import time

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from confctl.api.route import PEOPLE, Route
from confctl.auth import TOKEN_ID, require
from confctl.errors import ApiError, parse_body
from confctl.keys import API_TOKENS, USER_STORE, run_db, run_read
from rooms.store.tokens import DEFAULT_TOKEN_DAYS, MAX_TOKEN_DAYS, TokenError
from rooms.store.users import Role, User

TOKEN_ID_SHAPE = re.compile(r"tok_[0-9a-z_]{1,36}")


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = Field(default="token", min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")
    days: int = Field(default=DEFAULT_TOKEN_DAYS, ge=1, le=MAX_TOKEN_DAYS, description="how long it lives")
    user_id: str | None = Field(default=None, max_length=40, description="admins: whose (default: yours)")


class Rotation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    days: int | None = Field(default=None, ge=1, le=MAX_TOKEN_DAYS, description="default: the old token's lifetime")


def _may_manage(user: User, owner: str | None) -> bool:
    return owner is not None and (user.role is Role.ADMIN or owner == user.id)


async def _owned(request: web.Request) -> str:
    user = require(request)
    token_id = request.match_info["id"]
    owner = await run_read(request.app, request.app[API_TOKENS].owner, token_id) if TOKEN_ID_SHAPE.fullmatch(token_id) else None
    if not _may_manage(user, owner):  # another's token is as good as unknown: ids are not disclosed
        raise ApiError(404, "not_found", f"no token {token_id} of yours")
    return token_id


async def list_tokens(request: web.Request) -> web.Response:
    user = require(request)
    rows = await run_read(request.app, request.app[API_TOKENS].list, None if user.role is Role.ADMIN else user.id)
    return web.json_response({"tokens": rows})


async def issue_token(request: web.Request) -> web.Response:
    user = require(request)
    body = await parse_body(request, NewToken)
    owner = body.user_id or user.id
    if owner != user.id and user.role is not Role.ADMIN:
        raise ApiError(403, "forbidden", "only an administrator issues tokens for someone else")
    if await run_read(request.app, request.app[USER_STORE].by_id, owner) is None:
        raise ApiError(404, "not_found", f"no user {owner}")
    now = int(time.time())
    cap = await _not_after(request, user)
    token_id, token = await run_db(request.app, request.app[API_TOKENS].issue, owner, now, body.days, body.label,
                                   None, cap)
    expires = now + body.days * 86400 if cap is None else min(now + body.days * 86400, cap)
    return web.json_response({"id": token_id, "token": token, "expires_at": expires}, status=201)


async def _not_after(request: web.Request, user: User) -> int | None:
    """Until when a token this caller makes may live: no longer than the token they came with (else one
    token could mint a longer-lived one, forever, and expiry would mean nothing); admins: as asked."""
    if user.role is Role.ADMIN:
        return None
    mine = request.get(TOKEN_ID)
    expires = await run_read(request.app, request.app[API_TOKENS].expires_at, mine) if isinstance(mine, str) else None
    if expires is None:
        raise ApiError(403, "forbidden", "sign in again with your token to make or rotate tokens")
    return expires


async def rotate_token(request: web.Request) -> web.Response:
    token_id = await _owned(request)
    body = await parse_body(request, Rotation) if request.can_read_body else Rotation()
    cap = await _not_after(request, require(request))
    try:
        new_id, token = await run_db(request.app, request.app[API_TOKENS].rotate, token_id, int(time.time()),
                                     body.days, cap)
    except TokenError as exc:
        raise ApiError(409, "not_rotatable", str(exc)) from None
    return web.json_response({"id": new_id, "token": token, "revoked": token_id,
                              "expires_at": await run_read(request.app, request.app[API_TOKENS].expires_at, new_id)},
                             status=201)


async def revoke_token(request: web.Request) -> web.Response:
    token_id = await _owned(request)
    revoked = await run_db(request.app, request.app[API_TOKENS].revoke, token_id, int(time.time()))
    return web.json_response({"id": token_id, "revoked": revoked})


routes = [
    Route("GET", "/api/tokens", list_tokens, "Your bearer tokens (admins: everyone's): expiry, last use, revocation",
          PEOPLE),
    Route("POST", "/api/tokens", issue_token, "A new bearer token for you (admins: for anyone), shown once", PEOPLE,
          NewToken, {201: "{id, token}", 403: "for someone else", 404: "no such user"}),
    Route("POST", "/api/tokens/{id}/rotate", rotate_token, "A new token in place of this one, which is revoked at once",
          PEOPLE, Rotation, {201: "{id, token, revoked}", 404: "not yours or unknown", 409: "revoked or expired"}),
    Route("DELETE", "/api/tokens/{id}", revoke_token, "Revoke a token; browser sessions signed in with it end",
          PEOPLE, responses={200: "{id, revoked}", 404: "not yours or unknown"}),
]
