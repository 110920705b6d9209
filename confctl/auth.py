"""Bearer-token authentication, and the role table enforced from the route list."""
from __future__ import annotations

import re
import time
from typing import Awaitable, Callable

from aiohttp import web

from confctl.api.route import Route
from confctl.errors import ApiError
from confctl.keys import USER_STORE, WEB_SESSIONS, FEED_TOKENS, run_read
from rooms.store.users import User
from rooms.store.web_sessions import FEED_PREFIX

USER = web.RequestKey("user", User)
TOKEN_ID = web.RequestKey("token_id", object)  # the personal token the caller came with (bearer, or the cookie's)
ROUTE_TABLE = web.AppKey("route_table", dict)  # (method, canonical path) -> Route

# What a token can look like (cct_ + 43 URL-safe characters; the prefix is optional for
# tokens issued before it existed). Anything else is refused before it reaches a hash or
# the database: a non-ASCII header no longer becomes a UnicodeEncodeError.
TOKEN_SHAPE = re.compile(r"(cct_)?[A-Za-z0-9_-]{43}")
MAX_AUTHORIZATION = 8192
COOKIE = "confctl_session"  # a browser's sign-in (HttpOnly, SameSite=Strict): pages never hold a bearer token
COOKIE_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")
FEED_SHAPE = re.compile(FEED_PREFIX + r"[A-Za-z0-9_-]{43}")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# The only routes a feed token (or a token in a URL) reads: calendar clients cannot send headers.
FEED_ROUTES = ("/api/sessions/{id}.ics", "/api/sites/{site}/calendar.ics")


def route_table(routes: list[Route]) -> dict[tuple[str, str], Route]:
    return {(r.method, r.path): r for r in routes}


def _route_of(request: web.Request) -> Route | None:
    info = request.match_info
    if info.http_exception is not None:
        return None  # 404 / 405: let the router answer
    resource = info.route.resource
    if resource is None:
        return None
    return request.app[ROUTE_TABLE].get((info.route.method, resource.canonical))


def _token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    if len(header) > MAX_AUTHORIZATION:
        raise ApiError(431, "header_too_large", f"the Authorization header is limited to {MAX_AUTHORIZATION} bytes")
    return header[7:].strip() if header.lower().startswith("bearer ") else ""


async def _feed_user(request: web.Request) -> User | None:
    """Calendar clients cannot send headers: a .ics URL carries a feed token, which reads feeds only.
    (On /join, ?token= is a site's join token, verified by the signalling server, not a user's.)"""
    token = request.query.get("token", "")
    route = _route_of(request)
    if not token or route is None or route.path not in FEED_ROUTES:
        return None
    user = None
    if FEED_SHAPE.fullmatch(token):
        user_id = await run_read(request.app, request.app[FEED_TOKENS].user_of, token)
        user = None if user_id is None else await run_read(request.app, request.app[USER_STORE].by_id, user_id)
    elif TOKEN_SHAPE.fullmatch(token):  # a personal token in a URL: still read, for links made before feed tokens
        user = await run_read(request.app, request.app[USER_STORE].by_token, token)
    if user is None:
        raise _unknown_token()
    return user


async def _cookie_user(request: web.Request) -> User | None:
    value = request.cookies.get(COOKIE, "")
    if not COOKIE_SHAPE.fullmatch(value):
        return None
    found = await run_read(request.app, request.app[WEB_SESSIONS].session_of, value, int(time.time()))
    user_id = found[0] if found else None
    if user_id is None:
        return None  # signed out or expired: as if no cookie (pages send the browser to sign in)
    if request.method not in SAFE_METHODS and not same_origin(request, required=True):
        # SameSite=Strict keeps other sites' requests from carrying the cookie; the origin is checked as well,
        # for browsers that predate SameSite and for sibling hosts SameSite counts as the same site.
        raise ApiError(403, "cross_origin", "a signed-in browser's changes must come from confctl's own pages "
                       "(the request named no origin, or another one)")
    request[TOKEN_ID] = found[1] if found else None
    return await run_read(request.app, request.app[USER_STORE].by_id, user_id)


def same_origin(request: web.Request, required: bool) -> bool:
    """Whether a browser says this request comes from our own pages: `Sec-Fetch-Site: same-origin`, or an
    Origin equal to ours. With neither header, `required` decides (cookie writes: refused; sign-in: allowed,
    as a script may sign in, but a browser always sends one of them on a cross-origin POST)."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site == "same-origin"
    origin = request.headers.get("Origin")
    if origin is None:
        return not required
    return origin == f"{request.scheme}://{request.host}"



async def page_user(request: web.Request) -> User | None:
    """The signed-in user of a page request (pages are not API routes: the middleware leaves them be)."""
    return await _cookie_user(request)


def _unknown_token() -> ApiError:
    return ApiError(401, "invalid_token", "the bearer token is not known, has expired or was revoked",
                    headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


@web.middleware
async def auth_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    route = _route_of(request)
    token = _token(request)
    if token:
        if not TOKEN_SHAPE.fullmatch(token):
            raise _unknown_token()
        found = await run_read(request.app, request.app[USER_STORE].authenticate, token, int(time.time()))
        if found is None:
            raise _unknown_token()
        user = found[0]
        request[USER] = user
        request[TOKEN_ID] = found[1]
    elif route is not None and not route.public:
        user = await _feed_user(request) or await _cookie_user(request)
        if user is not None:
            request[USER] = user
    if route is not None and not route.public:
        user = require(request)
        if user.role.value not in route.roles:
            raise ApiError(403, "forbidden", f"role {user.role.value} may not {route.method} {route.path}; "
                           f"needs one of {list(route.roles)}")
    return await handler(request)


def require(request: web.Request) -> User:
    """The caller; the middleware has already checked the route's roles."""
    user = request.get(USER)
    if user is None:
        raise ApiError(401, "unauthenticated", "send Authorization: Bearer <token>",
                       headers={"WWW-Authenticate": "Bearer"})
    return user
