"""Bearer-token authentication and role checks."""
from __future__ import annotations

from typing import Awaitable, Callable

from aiohttp import web

from confctl.errors import ApiError
from confctl.keys import USER_STORE, run_db
from rooms.store.users import Role, User

USER = web.RequestKey("user", User)


@web.middleware
async def auth_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not token and request.path.endswith(".ics"):
        token = request.query.get("token", "")  # calendar clients cannot send headers
    # (On /join, ?token= is a site's join token, verified by the signalling server, not a user's.)
    if token:
        user = await run_db(request.app, request.app[USER_STORE].by_token, token)
        if user is None:
            raise ApiError(401, "invalid_token", "the bearer token is not known (revoked or mistyped)",
                           headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        request[USER] = user
    return await handler(request)


def require(request: web.Request, *roles: Role) -> User:
    """The caller, who must be authenticated and, if roles are given, hold one of them."""
    user = request.get(USER)
    if user is None:
        raise ApiError(401, "unauthenticated", "send Authorization: Bearer <token>",
                       headers={"WWW-Authenticate": "Bearer"})
    if roles and user.role not in roles:
        raise ApiError(403, "forbidden", f"role {user.role.value} may not do this; needs one of "
                       f"{[r.value for r in roles]}")
    return user
