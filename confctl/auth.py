"""Bearer-token authentication, and the role table enforced from the route list."""
from __future__ import annotations

import re
from typing import Awaitable, Callable

from aiohttp import web

from confctl.api.route import Route
from confctl.errors import ApiError
from confctl.keys import USER_STORE, run_read
from rooms.store.users import User

USER = web.RequestKey("user", User)
ROUTE_TABLE = web.AppKey("route_table", dict)  # (method, canonical path) -> Route

# What a token can look like (cct_ + 43 URL-safe characters; the prefix is optional for
# tokens issued before it existed). Anything else is refused before it reaches a hash or
# the database: a non-ASCII header no longer becomes a UnicodeEncodeError.
TOKEN_SHAPE = re.compile(r"(cct_)?[A-Za-z0-9_-]{43}")
MAX_AUTHORIZATION = 8192


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
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not token and request.path.endswith(".ics"):
        token = request.query.get("token", "")  # calendar clients cannot send headers
    # (On /join, ?token= is a site's join token, verified by the signalling server, not a user's.)
    return token


def _unknown_token() -> ApiError:
    return ApiError(401, "invalid_token", "the bearer token is not known (revoked or mistyped)",
                    headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


@web.middleware
async def auth_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    route = _route_of(request)
    token = _token(request)
    if token:
        if not TOKEN_SHAPE.fullmatch(token):
            raise _unknown_token()
        user = await run_read(request.app, request.app[USER_STORE].by_token, token)
        if user is None:
            raise _unknown_token()
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
