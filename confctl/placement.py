"""Where each site of a session attaches: the booked plan's attachments, handed to the media node."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from confctl.keys import BOOKINGS, MEDIA_NODE, run_read
from media.cascade_session import Placement
from rooms.ids import NodeId, SessionId, SiteId


def placement_of(session: dict[str, Any], root: NodeId) -> Placement:
    attachments = {SiteId(s): NodeId(n) for s, n in session["media_plan"]["attachments"].items()}
    return Placement(attachments, root)


async def place_session(app: web.Application, session: dict[str, Any]) -> None:
    """Tell the in-process media node where the session's sites attach (a cascade spans several)."""
    topo = await run_read(app, app[BOOKINGS].topology)
    app[MEDIA_NODE].place(SessionId(session["id"]), placement_of(session, topo.root_node()))
