"""Where each site of a session attaches: the booked plan's attachments, handed to the media node."""
from __future__ import annotations

from typing import Any, Mapping

from aiohttp import web

from confctl.keys import BOOKINGS, MEDIA_NODE, run_read
from media.cascade_session import Placement
from rooms.ids import NodeId, SessionId, SiteId


def attachments_of(session: dict[str, Any]) -> dict[str, str]:
    return dict(session["media_plan"]["attachments"])


async def place(app: web.Application, session_id: str, attachments: Mapping[str, str]) -> None:
    """Tell the in-process media node where the session's sites attach (a cascade spans several).
    Called where a leg or a phone is about to open a room, not on every lookup of the session."""
    topo = await run_read(app, app[BOOKINGS].topology)  # parsed once per topology version
    placement = Placement({SiteId(s): NodeId(n) for s, n in attachments.items()}, topo.root_node())
    app[MEDIA_NODE].place(SessionId(session_id), placement)
