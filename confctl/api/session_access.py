"""Who may see and who may change a session: the one check every session route makes."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from confctl.errors import ApiError
from confctl.keys import BOOKINGS, run_read
from rooms.store.users import Role, User


def may_see(user: User, session: dict[str, Any]) -> bool:
    if user.role is Role.TECHNICIAN:
        return any(s["site"] == user.site for s in session["sites"])
    return True


def may_edit(user: User, session: dict[str, Any]) -> bool:
    return user.role is Role.ADMIN or (user.role is Role.ORGANIZER and session["organizer_id"] == user.id)


async def session_for(request: web.Request, user: User) -> dict[str, Any]:
    """The session named by the route's {id}, if this user may see it (404 if none, 403 if not theirs)."""
    session = await run_read(request.app, request.app[BOOKINGS].get, request.match_info["id"])
    if not may_see(user, session):
        raise ApiError(403, "forbidden", f"site {user.site} does not take part in this session")
    return session
