"""Signing in from a browser: a bearer token exchanged once for an HttpOnly, SameSite=Strict cookie.

Why a token and not a name and password: every person already has a token (issued by an
administrator with `confctl users add`), so signing in needs no second credential to store, reset
or leak; the cookie session that replaces it in the browser is revocable on its own (sign-out),
and the token never appears in a URL, the page's script or the browser's storage.
Calendar clients, which cannot sign in, get feed tokens: read-only, scoped to .ics feeds, revocable.
"""
from __future__ import annotations

import time

from aiohttp import web
from pydantic import BaseModel, Field

from confctl.api.route import PEOPLE, PUBLIC, Route
from confctl.auth import COOKIE, TOKEN_SHAPE, require, same_origin
from confctl.errors import ApiError, parse_body
from confctl.keys import FEED_TOKENS, SETTINGS, USER_STORE, WEB_SESSIONS, run_db, run_read


class SignIn(BaseModel):
    token: str = Field(min_length=1, max_length=200)


class NewFeedToken(BaseModel):
    label: str = Field(default="calendar", min_length=1, max_length=100)


async def sign_in(request: web.Request) -> web.Response:
    # Login CSRF: another site's page must not sign this browser in to the attacker's account. Its form
    # or text/plain fetch needs no preflight; a JSON body does, and the origin must be ours.
    if not same_origin(request, required=False):
        raise ApiError(403, "cross_origin", "sign in from confctl's own sign-in page")
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the token as JSON: {\"token\": \"cct_…\"}")
    body = await parse_body(request, SignIn)
    token = body.token.strip()
    found = (await run_read(request.app, request.app[USER_STORE].authenticate, token, int(time.time()))
             if TOKEN_SHAPE.fullmatch(token) else None)
    if found is None:
        raise ApiError(401, "invalid_token", "that token is not known, has expired or was revoked: "
                       "ask an administrator for yours")
    user, token_id = found
    if user.role.value == "node":
        raise ApiError(403, "forbidden", "a media node's token does not sign in")
    lifetime = request.app[SETTINGS].web_session_hours * 3600
    value = await run_db(request.app, request.app[WEB_SESSIONS].open, user.id, int(time.time()), lifetime, token_id)
    resp = web.json_response({"user": user.to_dict(), "expires_in_s": lifetime})
    resp.set_cookie(COOKIE, value, max_age=lifetime, httponly=True, samesite="Strict", path="/",
                    secure=request.secure)
    return resp


async def sign_out(request: web.Request) -> web.Response:
    value = request.cookies.get(COOKIE)
    if value:
        await run_db(request.app, request.app[WEB_SESSIONS].close, value)
    resp = web.json_response({"signed_out": True})
    resp.del_cookie(COOKIE, path="/")
    return resp


async def add_feed_token(request: web.Request) -> web.Response:
    user = require(request)
    body = await parse_body(request, NewFeedToken)
    token_id, token = await run_db(request.app, request.app[FEED_TOKENS].issue, user.id, body.label, int(time.time()))
    return web.json_response({"id": token_id, "token": token, "label": body.label, "scope": "calendar"}, status=201)


async def list_feed_tokens(request: web.Request) -> web.Response:
    user = require(request)
    return web.json_response({"feed_tokens": await run_read(request.app, request.app[FEED_TOKENS].list, user.id)})


async def revoke_feed_token(request: web.Request) -> web.Response:
    user = require(request)
    if not await run_db(request.app, request.app[FEED_TOKENS].revoke, user.id, request.match_info["id"]):
        raise ApiError(404, "not_found", "no such feed token of yours")
    return web.json_response({"revoked": request.match_info["id"]})


routes = [
    Route("POST", "/api/signin", sign_in, "Sign a browser in: a bearer token for an HttpOnly session cookie", PUBLIC,
          SignIn, {200: "signed in (Set-Cookie)", 401: "unknown, expired or revoked token",
                   403: "from another origin", 415: "not JSON"}),
    Route("POST", "/api/signout", sign_out, "End this browser's session", PUBLIC),
    Route("POST", "/api/feed-tokens", add_feed_token, "A calendar feed token: reads your .ics feeds only, revocable",
          PEOPLE, NewFeedToken, {201: "the token, shown once"}),
    Route("GET", "/api/feed-tokens", list_feed_tokens, "Your feed tokens (not their values)", PEOPLE),
    Route("DELETE", "/api/feed-tokens/{id}", revoke_feed_token, "Revoke a feed token", PEOPLE),
]
